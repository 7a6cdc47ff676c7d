"""`minikf clean`: remove what killed runs left behind, found through their live-run records."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    root.command("clean")(clean_cmd)


def clean_cmd(
    run: str | None = typer.Option(None, help="only this run id (default: every run's leftovers)"),
) -> None:
    """Stop and remove what killed runs left: their processes (and so what they listened on),
    work dirs, containers and cluster objects, found through the records of live runs in
    $MINIKF_HOME/runs/live (default ~/.minikf); their results.json says which step was cut.
    A run whose minikf process still runs is left alone. Then containers, networks and volumes
    labelled minikf.run whose starting process is gone (runs of older versions, other homes)."""
    from minikf.engine.reaper import reap
    from minikf.runtime.errors import MinikfError
    from minikf.runtime.liverun import live_runs

    records, unreadable = live_runs()
    lines, problems = [], list(unreadable)
    for record in records:
        if run and record.run_id != run:
            continue
        if record.owner_alive():
            typer.echo(f"run {record.run_id}: still running (minikf pid {record.pid}), left alone")
            continue
        with record.locked() as mine:
            if not mine:
                typer.echo(f"run {record.run_id}: its reaper is cleaning it up now, left alone")
                continue
            why = (f"interrupted: the minikf process (pid {record.pid}) ended during the run "
                   f"without cleaning up; `minikf clean` stopped what it had started")
            for line in reap(record, why):
                (problems if line.startswith("could not") else lines).append(
                    f"run {record.run_id}: {line}")
    found, failed = _docker_orphans(run)
    lines += found
    problems += failed
    for line in lines:
        typer.echo(line)
    if problems:
        raise MinikfError("; ".join(problems))
    typer.echo(f"{len(lines)} leftover(s) removed" if lines else "nothing to clean")


def _docker_orphans(run: str | None) -> tuple[list[str], list[str]]:
    """Containers, networks, volumes of runs without a living minikf process, by label; nothing
    where no Docker Engine answers (a host without docker has none)."""
    from minikf.images import engine
    from minikf.platforms.docker import leftovers, orphans, remove_labelled

    if engine.available() is not None:
        return [], []
    client = engine.client()
    lines, problems = [], []
    try:
        for run_id in orphans(client, run):
            lines += [f"removed {line}" for line in leftovers(client, run_id)]
            problems += remove_labelled(client, run_id)
    finally:
        client.close()
    return lines, problems
