"""`minikf compile PIPELINE -o FILE`: a journey as KFP IR YAML for a KFP API server."""

from __future__ import annotations

from pathlib import Path

import typer

from minikf.runtime.errors import MinikfError


def register(root: typer.Typer) -> None:
    root.command()(compile)


def compile(
    pipeline: str = typer.Argument(..., help="a pipeline name, e.g. fashion-mnist"),
    output: Path = typer.Option(..., "-o", "--output", help="the KFP IR YAML to write"),
) -> None:
    """Compile a journey's pipeline to KFP IR YAML that a KFP API server accepts."""
    from minikf.pipelines import PIPELINES

    if pipeline not in PIPELINES:
        raise MinikfError(f"no pipeline {pipeline!r}; known: {', '.join(PIPELINES)}", exit_code=2)
    from kfp import compiler

    from minikf.pipelines.run_local import load_pipeline

    compiler.Compiler().compile(load_pipeline(pipeline), str(output))
    typer.echo(f"wrote {output}")
