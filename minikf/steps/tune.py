"""Hyperparameter search over the Fashion-MNIST trainer, Katib-style, locally with Optuna.

args: data_dir (preprocessed: train.npz, test.npz) and spec (minikf/tuning/spec.py). The spec
is validated before any trial starts. Writes RESULTS/tuning/<step>.json (every trial) and
the best trial's model to RESULTS/tuning/best-model.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from minikf.runtime import files
from minikf.runtime.errors import StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome
from minikf.tuning.spec import parse_spec
from minikf.workload.contract import WORKER_MODULE


def run(ctx: StepContext) -> StepOutcome:
    spec = parse_spec(ctx.arg("spec", kind=dict), ctx.name)  # a MinikfError is the step's message
    data_dir = Path(ctx.arg("data_dir", kind=str))
    missing = [n for n in ("train.npz", "test.npz") if not (data_dir / n).is_file()]
    if missing:
        raise StepFailed(f"step {ctx.name!r}: args.data_dir {data_dir} lacks {', '.join(missing)} "
                         "(the preprocess step's output)")

    from minikf.tuning.search import run_search  # optuna and torch: only once the spec is good
    from minikf.tuning.trial import TrialEnv

    ctx.log_path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock, open(ctx.log_path, "a") as f:
            f.write(line + "\n")
        ctx.status(line)

    env = TrialEnv(data_dir, ctx.workdir / "tuning" / ctx.name, ctx.log_path.parent / ctx.name,
                   ctx.platform, ctx.resources)
    ctx.resources.on_cleanup(env.gate.close)  # runs before the run's processes are stopped
    env.workdir.mkdir(parents=True)
    env.logs.mkdir(parents=True, exist_ok=True)
    log(f"search: {spec.max_trials} trials, {spec.parallel_trials} at a time, "
        f"{spec.objective.type} {spec.objective.metric}, early stopping {spec.early_stopping.algorithm}")
    result = run_search(spec, env, log)
    out = ctx.results_dir / "tuning"
    out.mkdir(parents=True, exist_ok=True)
    files.write_text(out / f"{ctx.name}.json", json.dumps({
        "spec": spec.model_dump(), "direction": result.direction, "metric": result.metric,
        "stopped_because": result.stopped_because, "best": result.best, "trials": result.trials,
    }, indent=2))
    failed = result.count("FAIL")
    if failed > spec.max_failed_trials:
        first = next(t["error"] for t in result.trials if t["state"] == "FAIL")
        raise StepFailed(f"{failed} trials failed (max_failed_trials {spec.max_failed_trials}); "
                         f"first: {first}")
    if result.best is None:
        raise StepFailed(f"no trial completed ({len(result.trials)} run; see {ctx.log_path})")
    best = result.best
    published = files.copy_tree(best["model_dir"], out / "best-model")
    log(f"best: trial {best['number']} {result.metric}={best['value']:.4f} {json.dumps(best['params'])}")
    margin = best["value"] - result.worst_value
    metrics = {
        "best_trial": best["number"], f"best_{result.metric}": best["value"],
        f"worst_{result.metric}": result.worst_value,
        "best_margin": margin if result.direction == "maximize" else -margin,
        "trials": len(result.trials), "trials_complete": result.count("COMPLETE"),
        "trials_pruned": result.count("PRUNED"), "trials_failed": failed,
        **{f"best_{k}": v for k, v in best["params"].items()},
    }
    series = {result.metric: [t["value"] if t["value"] is not None else t["intermediate"][-1]
                              for t in result.trials if t["intermediate"]]}
    outputs = {"model_dir": str(published), "best_params": best["params"],
               "best_trial": best["number"], "stopped_because": result.stopped_because}
    return StepOutcome(metrics=metrics, outputs=outputs, series=series)


OUTPUTS = ("best_trial", "best_*", "worst_*", "best_margin", "trials", "trials_complete",
           "trials_pruned", "trials_failed", "model_dir", "best_params", "stopped_because")

# Every trial's workers fork from one interpreter that loaded torch when the run started, where
# the platform can: seconds less per trial.
KIND = StepKind("tune", run, warm_modules=(WORKER_MODULE,), outputs=OUTPUTS)
