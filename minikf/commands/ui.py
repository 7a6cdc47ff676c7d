"""`minikf ui`: the local dashboard (runs, compare, lineage, running now) behind a token."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import typer

from minikf.runtime.errors import MinikfError

TOKEN_ENV = "MINIKF_UI_TOKEN"


def register(root: typer.Typer) -> None:
    root.command()(ui)


def ui(
    port: int = typer.Option(8765, help="HTTP port"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (anything else than loopback "
                                               "exposes your results to the network)"),
    results: list[Path] = typer.Option(
        [], "--results", "-r", help="a results dir to scan, repeatable (default: ./results and "
                                    "every profile's runs)"),
    db: Path | None = typer.Option(None, help="the lineage store (default: $MINIKF_METADATA_DB, "
                                              "else $MINIKF_HOME/metadata.db)"),
) -> None:
    """Browse runs, reports, conformance bundles and lineage in a browser, read-only."""
    from minikf.ui import default_dirs, serve
    from minikf.ui.app import Settings

    for folder in results:
        if not folder.is_dir():
            raise MinikfError(f"--results {folder}: no such directory", exit_code=2)
    token = os.environ.get(TOKEN_ENV) or ""
    shown = not token
    token = token or secrets.token_urlsafe(32)
    hosts = ["127.0.0.1", "localhost"] if host in ("127.0.0.1", "localhost") else ["*"]
    settings = Settings(token=token, dirs=results or default_dirs(), db=db, hosts=hosts)
    def ready(bound: int) -> None:
        where = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{bound}/"
        if shown:  # like `minikf serve`: a generated token is shown once, in a URL fragment
            typer.echo(f"minikf ui: open {where}#token={token}  (token shown once; the part "
                       f"after # never reaches the server or its logs)", err=True)
        else:
            typer.echo(f"minikf ui: open {where} and sign in with ${TOKEN_ENV}", err=True)
        typer.echo(f"scanning {', '.join(str(d) for d in settings.dirs)}; Ctrl-C stops it",
                   err=True)

    serve(settings, host, port, ready)
