"""`minikf version`."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    root.command()(version)


def version() -> None:
    """Print the versions of minikf and what it drives."""
    from minikf.results import versions

    for name, value in versions().items():
        typer.echo(f"{name} {value}")
