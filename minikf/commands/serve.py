"""`minikf serve --model DIR`: a trained model behind KServe's ModelServer in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

from minikf.runtime.errors import MinikfError


def register(root: typer.Typer) -> None:
    root.command()(serve)


def serve(
    model: Path = typer.Option(..., "--model", help="model directory (model.pt + model.json)"),
    port: int = typer.Option(8080, help="HTTP port"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (0.0.0.0 exposes it to the network)"),
    token: str | None = typer.Option(
        None, envvar="MINIKF_SERVE_TOKEN", help="bearer token required on every request"
    ),
) -> None:
    """Serve a trained model (KServe V1 and V2 protocols) in the foreground."""
    if not (model / "model.pt").is_file():
        raise MinikfError(f"--model {model}: no model here (expected model.pt and model.json)", exit_code=2)
    from minikf.workload.server import serve as run_server

    if not token:  # secure by default: never an open endpoint
        import secrets

        token = secrets.token_urlsafe(32)
        typer.echo(f"no --token given; requests need this bearer token (shown once): {token}", err=True)
    run_server(model, port, host=host, token=token)
