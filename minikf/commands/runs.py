"""`minikf runs list|show|compare`: the lineage store (which data and parameters made a model)."""

from __future__ import annotations

from pathlib import Path

import typer

from minikf.runtime.errors import MinikfError

app = typer.Typer(no_args_is_help=True,
                  help="Recorded runs: data (sha256), parameters, code, image, model, metrics.")
DB_HELP = "the store (default: $MINIKF_METADATA_DB, $MINIKF_HOME/metadata.db, ~/.minikf/metadata.db)"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="runs")


def _open(db: Path | None):
    from minikf.metadata import default_db_path
    from minikf.metadata.store import MetadataStore

    path = db or default_db_path()
    if not path.exists():
        raise MinikfError(f"no metadata store at {path} yet: run a scenario first "
                          "(`minikf run fashion-mnist`) or pass --db", exit_code=2)
    return MetadataStore(path)


@app.command("list")
def list_cmd(scenario: str | None = typer.Option(None, help="only runs of this scenario"),
             limit: int = typer.Option(20, help="newest first, at most this many"),
             db: Path | None = typer.Option(None, help=DB_HELP)) -> None:
    """Recorded runs, newest first, with the short sha256 of the model each produced."""
    from minikf.metadata.report import runs_table

    with _open(db) as store:
        typer.echo(runs_table(store.list_runs(scenario, limit)))


@app.command("show")
def show_cmd(run: str | None = typer.Argument(None, help="run id (a unique prefix is enough)"),
             model: Path | None = typer.Option(None, help="find the run that produced this model "
                                               "(a file or folder, matched by sha256)"),
             json_out: bool = typer.Option(False, "--json", help="everything, as JSON"),
             db: Path | None = typer.Option(None, help=DB_HELP)) -> None:
    """Which data (sha256) and parameters, code and image made this run's model; its metrics."""
    import dataclasses
    import json

    from minikf.metadata.report import show

    if (run is None) == (model is None):
        raise MinikfError("give a RUN id or --model PATH (one of them)", exit_code=2)
    with _open(db) as store:
        run_id = store.resolve(run) if run else _run_of_model(store, model)
        record = store.get(run_id)
    typer.echo(json.dumps(dataclasses.asdict(record), indent=2) if json_out else show(record))


def _run_of_model(store, model: Path) -> str:
    from minikf.metadata.lineage import hash_tree

    if not model.exists():
        raise MinikfError(f"--model {model}: no such file or folder", exit_code=2)
    for _, _, sha, _ in hash_tree(model):
        runs = store.runs_with_artifact(sha, kind="model")
        if runs:
            return runs[0]
    raise MinikfError(f"no recorded run produced {model} (no model file with its sha256)", 2)


@app.command("compare")
def compare_cmd(a: str = typer.Argument(..., help="run id"),
                b: str = typer.Argument(..., help="run id"),
                db: Path | None = typer.Option(None, help=DB_HELP)) -> None:
    """What differs between two runs: parameters, data, code, image, model, metrics."""
    from minikf.metadata.report import compare

    with _open(db) as store:
        typer.echo(compare(store.get(store.resolve(a)), store.get(store.resolve(b))))
