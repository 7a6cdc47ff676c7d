"""`minikf scenarios list|validate`."""

from __future__ import annotations

from pathlib import Path

import typer

from minikf.commands.common import scenario_files

app = typer.Typer(no_args_is_help=True, help="List and validate scenario files.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="scenarios")


@app.command("list")
def scenarios_list() -> None:
    """List the bundled scenarios and the capabilities each needs."""
    from minikf.scenario import load_scenario

    for path in scenario_files():
        scenario = load_scenario(path)
        needs = ", ".join(scenario.requires) or "-"
        typer.echo(f"{scenario.name:24} needs: {needs:30} {scenario.description}")


@app.command("validate")
def scenarios_validate(paths: list[Path]) -> None:
    """Validate scenario files as `run` would before its first step (schema, `${...}` references,
    programs); print PATH:LINE: field: problem for each problem."""
    from minikf.engine.checks import problems as run_problems
    from minikf.runtime.errors import ScenarioInvalid
    from minikf.scenario import load_scenario

    problems: list[str] = []
    for path in paths:
        try:
            problems += run_problems(load_scenario(path))
        except ScenarioInvalid as exc:
            problems += exc.problems
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(2)
    typer.echo(f"{len(paths)} scenario file(s) valid")
