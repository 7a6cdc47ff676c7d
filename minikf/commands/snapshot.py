"""`minikf snapshot create|list|show|restore` and the re-run behind `minikf run --from-snapshot`."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import typer

from minikf.runtime.errors import MinikfError

app = typer.Typer(no_args_is_help=True,
                  help="Snapshots of runs and notebook folders: data, code, parameters, environment, "
                       "model, results; restore and re-run them.")
USER_HELP = "the profile whose store it is (default: yours, $MINIKF_HOME/snapshots)"
DB_HELP = "the lineage store (default: $MINIKF_METADATA_DB, $MINIKF_HOME/metadata.db)"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="snapshot")


@app.command("create")
def create_cmd(
    run: str | None = typer.Argument(None, help="a run's results dir, or its id (a unique prefix)"),
    notebook: Path | None = typer.Option(None, "--notebook", help="a notebook folder instead of a run"),
    user: str | None = typer.Option(None, "--user", "-u", help=USER_HELP),
    db: Path | None = typer.Option(None, help=DB_HELP),
    json_out: bool = typer.Option(False, "--json", help="a JSON summary as the last line"),
) -> None:
    """Keep a run (or a notebook folder) whole: files by sha256, stored once however often seen."""
    from minikf.snapshots.capture import snapshot_notebook, snapshot_run

    if (run is None) == (notebook is None):
        raise MinikfError("give a RUN (results dir or run id) or --notebook DIR, one of them", 2)
    manifest = snapshot_notebook(notebook, user) if notebook else snapshot_run(run, user, db=db)
    stats = manifest["stats"]
    what = f"run {manifest['run']['run_id']}" if manifest["kind"] == "run" else str(notebook)
    typer.echo(f"snapshot {manifest['id']} of {what}: {stats['files']} files, "
               f"{stats['objects_new']} new objects ({stats['bytes_new']} B), "
               f"{stats['objects_reused']} already in the store")
    if json_out:
        typer.echo(json.dumps({"id": manifest["id"], **stats,
                               "data_files": len(manifest.get("data", {}))}))


@app.command("list")
def list_cmd(user: str | None = typer.Option(None, "--user", "-u", help=USER_HELP)) -> None:
    """Snapshots in the store, newest first."""
    from minikf.snapshots import store_for

    store = store_for(user)
    rows = store.list()
    typer.echo(f"{'SNAPSHOT':18} {'CREATED':26} {'KIND':9} {'FILES':>6}  OF")
    for m in rows:
        of = (f"run {m['run']['run_id']} ({m['run']['scenario']} on {m['run']['platform']})"
              if m.get("kind") == "run" else m.get("notebook", {}).get("dir", ""))
        typer.echo(f"{m['id']:18} {m['created']:26} {m['kind']:9} {len(m['files']):>6}  {of}")
    objects, size = store.usage()
    typer.echo(f"{len(rows)} snapshots, {objects} objects, {size} B in {store.root}")


@app.command("show")
def show_cmd(
    snapshot: str = typer.Argument(..., help="snapshot id (a unique prefix is enough)"),
    user: str | None = typer.Option(None, "--user", "-u", help=USER_HELP),
    verify: bool = typer.Option(False, help="re-hash every object it uses"),
    json_out: bool = typer.Option(False, "--json", help="the whole manifest, as JSON"),
) -> None:
    """What a snapshot holds: its run, code, parameters, environment, data and files."""
    from minikf.snapshots import store_for

    store = store_for(user)
    manifest = store.load(snapshot)
    checked = store.verify(manifest) if verify else None
    if json_out:
        typer.echo(json.dumps(manifest, indent=1, sort_keys=True))
        return
    typer.echo(_describe(manifest))
    if checked is not None:
        typer.echo(f"verified: {checked} objects match their sha256")


def _describe(m: dict) -> str:
    out = [f"snapshot {m['id']} ({m['kind']}), created {m['created']}"
           + (f", profile {m['owner']}" if m.get("owner") else "")]
    if m["kind"] == "run":
        r, c = m["run"], m["code"]
        out += [f"  run:     {r['run_id']}: {r['scenario']} on {r['platform']}, {r['status']}",
                f"  code:    {c['code_version']}; scenario {c['scenario_path']} "
                f"(sha256:{c['scenario_sha256'][:12]})",
                f"  image:   {m['environment'].get('image', '')}"
                + "".join(f"; {ref} is {iid[:19] or 'gone'}"
                          for ref, iid in m["environment"].get("image_ids", {}).items()),
                "  parameters: " + ", ".join(f"{k}={v}" for k, v in
                                             m["parameters"].get("scenario", {}).items()),
                f"  inputs:  {', '.join(f'{k} -> {v}' for k, v in m['inputs'].items()) or 'none'}",
                f"  data:    {len(m['data'])} files by sha256; model: {len(m['model'])} files"]
        for step, values in m.get("metrics", {}).items():
            out.append(f"  metrics {step}: " + ", ".join(f"{k}={v:.6g}" for k, v in values.items()))
    env = m["environment"]
    out.append(f"  environment: python {env['python']}, {len(env['packages'])} packages "
               f"(torch {env['packages'].get('torch', '-')}, kfp {env['packages'].get('kfp', '-')})")
    roles: dict[str, int] = {}
    for f in m["files"]:
        roles[f["role"]] = roles.get(f["role"], 0) + 1
    out.append(f"  files:   {len(m['files'])} (" + ", ".join(f"{n} {r}" for r, n in sorted(roles.items()))
               + ")")
    return "\n".join(out)


@app.command("restore")
def restore_cmd(
    snapshot: str = typer.Argument(..., help="snapshot id (a unique prefix is enough)"),
    directory: Path = typer.Argument(..., help="a new (or empty) folder to restore into"),
    user: str | None = typer.Option(None, "--user", "-u", help=USER_HELP),
) -> None:
    """Write a snapshot's files back, each checked against its sha256."""
    from minikf.snapshots import store_for
    from minikf.snapshots.restore import restore

    manifest = restore(store_for(user), snapshot, directory)
    typer.echo(f"restored {manifest['id']}: {len(manifest['files'])} files into {directory}")


def rerun(snapshot: str, platform: str | None, results: Path, user: str | None,
          restore_dir: Path | None, metric: str, tolerance: float, json_out: bool,
          quiet: bool, cluster: tuple[str | None, str | None] = (None, None)) -> None:
    """Restore a run snapshot, run its scenario again with the same parameters and data, and
    compare: the data's sha256 and the metrics. Exit 0 when the run passed, the data is the
    same and `metric` is within `tolerance` of the snapshot's."""
    import tempfile

    from minikf.commands.progress import Progress
    from minikf.engine.runner import run_scenario
    from minikf.kube import cluster_options
    from minikf.metadata import default_db_path
    from minikf.metadata.store import MetadataStore
    from minikf.platforms import get_platform
    from minikf.scenario import load_scenario
    from minikf.snapshots import store_for
    from minikf.snapshots.restore import compare, comparison_text, plan_rerun, restore

    store = store_for(user)
    with tempfile.TemporaryDirectory(prefix="minikf-snapshot-") as tmp:
        where = restore_dir or Path(tmp) / "restored"
        manifest = restore(store, snapshot, where)
        plan = plan_rerun(manifest, where)
        name = platform or plan.platform
        target = get_platform(name, **cluster_options(name, *cluster))
        typer.echo(f"Re-running {manifest['id']} ({manifest['run']['scenario']}, run "
                   f"{manifest['run']['run_id']}) on {target.name} ...", err=True)
        try:
            result = run_scenario(load_scenario(plan.scenario), target, results, plan.params,
                                  Progress(quiet))
        except KeyboardInterrupt as exc:  # Interrupted: the run stopped what it started
            from minikf.runtime.errors import Interrupted

            stopped = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
            typer.echo(stopped.message, err=True)
            raise typer.Exit(stopped.exit_code) from None
        finally:
            target.close()
    with MetadataStore(default_db_path()) as lineage:
        lineage.link_snapshot(manifest["id"], result.run_id, "rerun", result.started, str(store.root))
        comparison = compare(manifest, lineage.get(result.run_id))
    typer.echo(f"{manifest['run']['scenario']}: {result.status}. {result.message}".rstrip(), err=True)
    typer.echo(comparison_text(comparison))
    delta = comparison.delta(metric)
    close = delta is not None and abs(delta) <= tolerance
    reproduced = result.ok and comparison.data_same and close
    verdict = ("reproduced" if reproduced else "NOT reproduced") + \
        f": data {'same' if comparison.data_same else 'different'}, {metric} " + \
        (f"delta {delta:+.4g} (tolerance {tolerance})" if delta is not None else "not reported")
    typer.echo(verdict)
    if json_out:
        original, again = next((v for k, v in reversed(comparison.metrics.items())
                                if k.endswith(f".{metric}") and None not in v), (None, None))
        typer.echo(json.dumps({"reproduced": int(reproduced), "run_passed": int(result.ok),
                               "run_id": result.run_id, "data_files": comparison.data_files,
                               "data_same": int(comparison.data_same), "metric": metric,
                               "original": original, "rerun": again, "delta": delta,
                               "abs_delta": abs(delta) if delta is not None else None}))
    raise typer.Exit(0 if reproduced else 1)
