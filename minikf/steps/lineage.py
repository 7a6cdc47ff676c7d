"""The metadata journey: run a training scenario through the CLI a few times, then ask the store
which data and parameters made each model (`minikf runs show --model`) and what differs
(`minikf runs compare`), checking the answers against the files themselves.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from minikf.metadata.lineage import sha256_file
from minikf.runtime.errors import StepFailed
from minikf.runtime.logs import log_tail
from minikf.steps.base import StepContext, StepKind, StepOutcome


def _cli(ctx: StepContext, args: list[str], env: dict, log: Path) -> str:
    """One `minikf ...` command in its own process group; its output, or a failure with the log."""
    log.unlink(missing_ok=True)  # spawn appends; a reused results dir must not mix runs
    proc = ctx.resources.spawn([sys.executable, "-m", "minikf.cli", *args], log, env=env,
                               cwd=ctx.workdir)
    if proc.wait() != 0:
        raise StepFailed(f"`minikf {' '.join(args[:2])}` failed: {log_tail(log)} (log: {log})")
    return log.read_text(errors="replace")


def _check_run(shown: dict, run_id: str, params: dict, data: dict[str, str]) -> list[str]:
    """Problems with what `runs show --model` answered for one run; [] when all is right."""
    problems = []
    if shown["run_id"] != run_id:
        problems.append(f"model traced to run {shown['run_id']}, expected {run_id}")
    recorded = {Path(a["name"]).name: a["sha256"] for a in shown["artifacts"]
                if a["kind"] == "dataset"}
    for name, sha in data.items():
        if recorded.get(name) != sha:
            problems.append(f"data file {name}: recorded sha256 {recorded.get(name)}, file has {sha}")
    scenario_params = shown["params"].get("scenario", {})
    for key, value in params.items():
        if scenario_params.get(key) != value:
            problems.append(f"parameter {key}: recorded {scenario_params.get(key)!r}, ran with {value!r}")
    if not shown["code_version"] or not shown["image"]:
        problems.append("code version or image not recorded")
    return problems


def run(ctx: StepContext) -> StepOutcome:
    scenario = ctx.arg("scenario", kind=str)
    param_sets = ctx.arg("runs", kind=list)
    data_dir = Path(ctx.arg("data_dir", kind=str))
    if len(param_sets) < 2 or not all(isinstance(p, dict) for p in param_sets):
        raise StepFailed(f"step {ctx.name!r}: args.runs should be a list of 2+ parameter maps")
    data = {p.name: sha256_file(p) for p in sorted(data_dir.iterdir()) if p.is_file()}
    if not data:
        raise StepFailed(f"step {ctx.name!r}: args.data_dir {data_dir} has no files")
    home = ctx.workdir / "lineage"
    env = {**os.environ, "MINIKF_METADATA_DB": str(home / "metadata.db")}
    run_ids, problems = [], []
    for i, params in enumerate(param_sets):
        results = home / f"run-{i}"
        flags = [arg for k, v in params.items() for arg in ("--param", f"{k}={json.dumps(v)}")]
        ctx.status(f"training run {i + 1} of {len(param_sets)}")
        _cli(ctx, ["run", scenario, "--platform", ctx.platform.name, "--results", str(results),
                   *flags], env,
             ctx.log_path.with_name(f"{ctx.name}-run-{i}.log"))
        run_id = json.loads((results / "results.json").read_text())["run_id"]
        run_ids.append(run_id)
        shown = json.loads(_cli(ctx, ["runs", "show", "--model", str(results / "model"), "--json"],
                                env, ctx.log_path.with_name(f"{ctx.name}-show-{i}.log")))
        problems += _check_run(shown, run_id, params, data)
    listed = _cli(ctx, ["runs", "list"], env, ctx.log_path.with_name(f"{ctx.name}-list.log"))
    compared = _cli(ctx, ["runs", "compare", run_ids[0], run_ids[1]], env,
                    ctx.log_path.with_name(f"{ctx.name}-compare.log"))
    changed = sorted(k for k in set(param_sets[0]) | set(param_sets[1])
                     if param_sets[0].get(k) != param_sets[1].get(k))
    missing = [k for k in changed if f"scenario.{k}" not in compared]
    if missing:
        problems.append(f"`runs compare` does not show the changed parameters {missing}")
    if "data: same" not in compared:
        problems.append("`runs compare` does not say the data was the same")
    if problems:
        raise StepFailed("lineage: " + "; ".join(problems) + f" (logs: {ctx.log_path.parent})")
    metrics = {"runs_recorded": sum(r in listed for r in run_ids), "data_files_verified": len(data),
               "changed_params_shown": len(changed) - len(missing)}
    return StepOutcome(metrics=metrics, outputs={"run_ids": run_ids, "db": env["MINIKF_METADATA_DB"]})


OUTPUTS = ("runs_recorded", "data_files_verified", "changed_params_shown", "run_ids", "db")

KIND = StepKind("lineage", run, outputs=OUTPUTS)
