"""The `minikf` command line (typer). Errors are one message and an exit code, no traceback."""

from __future__ import annotations

import sys

import typer

from minikf.commands import register_all
from minikf.runtime.errors import MinikfError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
register_all(app)


def main() -> None:
    """Entry point: a MinikfError is one line and its exit code; --debug shows the traceback."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except MinikfError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
