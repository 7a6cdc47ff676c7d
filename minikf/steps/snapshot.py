"""The snapshot journey, through the CLI: run a training scenario on a copy of the data, snapshot
the run, delete the work (results and data), restore the snapshot, re-run from it, and check
that the re-run read the same data (sha256) and reached a comparable accuracy, and that the
lineage store shows the snapshot as a node of the re-run's model.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from minikf.metadata.lineage import sha256_file
from minikf.runtime.errors import StepFailed
from minikf.runtime.logs import last_json_line, log_tail
from minikf.steps.base import StepContext, StepKind, StepOutcome


def _cli(ctx: StepContext, args: list[str], env: dict, name: str, ok=(0,)) -> str:
    """One `minikf ...` in its own process group; its output, or a failure naming its log."""
    log = ctx.log_path.with_name(f"{ctx.name}-{name}.log")
    log.unlink(missing_ok=True)
    ctx.status(f"minikf {' '.join(args[:2])}")
    proc = ctx.resources.spawn([sys.executable, "-m", "minikf.cli", *args], log, env=env,
                               cwd=ctx.workdir)
    if proc.wait() not in ok:
        raise StepFailed(f"`minikf {' '.join(args[:3])}` failed: {log_tail(log)} (log: {log})")
    return log.read_text(errors="replace")


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def run(ctx: StepContext) -> StepOutcome:
    scenario = ctx.arg("scenario", kind=str)
    source = Path(ctx.arg("data_dir", kind=str))
    params = ctx.arg("params", {}, dict)
    tolerance = float(ctx.arg("tolerance", 0.05, (int, float)))
    if not source.is_dir():
        raise StepFailed(f"step {ctx.name!r}: args.data_dir {source} is not a folder")
    top = ctx.workdir / ctx.name
    data, first, restored = top / "data", top / "run", top / "restored"
    shutil.copytree(source, data)
    original = _hashes(data)
    home = top / "home"
    env = {**os.environ, "MINIKF_HOME": str(home), "MINIKF_METADATA_DB": str(home / "metadata.db")}
    flags = [a for k, v in {**params, "mirrors": str(data)}.items()
             for a in ("--param", f"{k}={json.dumps(v) if not isinstance(v, str) else v}")]
    platform = ["--platform", ctx.platform.name]
    _cli(ctx, ["run", scenario, *platform, "--results", str(first), "--quiet", *flags], env, "run")
    created = last_json_line(_cli(ctx, ["snapshot", "create", str(first), "--json"], env, "create"))
    snap = created.get("id") or ""
    model = _hashes(first / "model")
    shutil.rmtree(first)  # the work is gone: results, model and the data the run read
    shutil.rmtree(data)
    _cli(ctx, ["snapshot", "restore", snap, str(restored)], env, "restore")
    problems = [f"restored {name}: sha256 {found}, the original had {original.get(name)}"
                for name, found in _hashes(restored / "inputs" / "mirrors").items()
                if original.get(name) != found]
    if _hashes(restored / "results" / "model") != model:
        problems.append("the restored model's files differ from the run's")
    text = _cli(ctx, ["run", "--from-snapshot", snap, *platform, "--results", str(top / "rerun"),
                      "--quiet", "--json", "--tolerance", str(tolerance)], env, "rerun", ok=(0, 1))
    rerun = last_json_line(text)
    if not rerun.get("run_passed"):
        why = next((line for line in text.splitlines() if ": failed." in line), "no result")
        raise StepFailed(f"snapshot: the re-run from {snap} did not pass: {why}")
    shown = json.loads(_cli(ctx, ["runs", "show", "--model", str(top / "rerun" / "model"), "--json"],
                            env, "lineage"))
    linked = [s for s in shown.get("snapshots", []) if s["snapshot_id"] == snap]
    if not linked:
        problems.append(f"`runs show --model` does not show snapshot {snap} in the re-run's lineage")
    verified = _cli(ctx, ["snapshot", "show", snap, "--verify"], env, "verify")
    if problems:
        raise StepFailed("snapshot: " + "; ".join(problems) + f" (logs: {ctx.log_path.parent})")
    metrics = {"snapshot_files": created.get("files"), "objects_reused": created.get("objects_reused"),
               "data_files_restored": len(original), "data_same": rerun.get("data_same"),
               "data_files_compared": rerun.get("data_files"), "reproduced": rerun.get("reproduced"),
               "accuracy_original": rerun.get("original"), "accuracy_rerun": rerun.get("rerun"),
               "abs_delta": rerun.get("abs_delta"), "lineage_linked": len(linked),
               "objects_verified": int("verified:" in verified)}
    return StepOutcome(metrics=metrics, outputs={"snapshot_id": snap, "store": str(home)})


OUTPUTS = ("snapshot_files", "objects_reused", "data_files_restored", "data_same",
           "data_files_compared", "reproduced", "accuracy_original", "accuracy_rerun", "abs_delta",
           "lineage_linked", "objects_verified", "snapshot_id", "store")

KIND = StepKind("snapshot", run, outputs=OUTPUTS)
