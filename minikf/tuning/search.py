"""The search: an Optuna study with the spec's sampler, median pruner, budget and parallelism."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from minikf.tuning.spec import TuningSpec
from minikf.tuning.trial import CheckpointScorer, TrialEnv, TrialFailed, run_trial


@dataclass
class SearchResult:
    direction: str
    metric: str
    trials: list[dict] = field(default_factory=list)
    best: dict | None = None
    worst_value: float | None = None
    stopped_because: str = "budget spent"

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t["state"] == state)


def _sampler(spec: TuningSpec) -> optuna.samplers.BaseSampler:
    if spec.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=max(2, spec.parallel_trials))


def _pruner(spec: TuningSpec) -> optuna.pruners.BasePruner:
    stop = spec.early_stopping
    if stop.algorithm == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=stop.min_trials_required,
                                       n_warmup_steps=stop.start_step)


def run_search(spec: TuningSpec, env: TrialEnv, log: Callable[[str], None]) -> SearchResult:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the step log says what happened
    direction = spec.objective.type or "maximize"
    study = optuna.create_study(direction=direction, sampler=_sampler(spec), pruner=_pruner(spec))
    scorer = CheckpointScorer(env.data_dir)
    result = SearchResult(direction=direction, metric=spec.objective.metric)
    lock = threading.Lock()

    def stop_when(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with lock:
            failed = sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
            if failed > spec.max_failed_trials:
                result.stopped_because = f"{failed} trials failed (max_failed_trials " \
                                         f"{spec.max_failed_trials})"
                study.stop()
            goal = spec.objective.goal
            if goal is not None and trial.value is not None and (
                    trial.value >= goal if direction == "maximize" else trial.value <= goal):
                result.stopped_because = f"goal reached: trial {trial.number} " \
                                         f"{result.metric}={trial.value:.4f}"
                study.stop()

    study.optimize(lambda t: run_trial(t, spec, env, scorer, log), n_trials=spec.max_trials,
                   n_jobs=spec.parallel_trials, catch=(TrialFailed,), callbacks=[stop_when])
    for t in sorted(study.trials, key=lambda t: t.number):
        result.trials.append({
            "number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
            "epochs_run": t.user_attrs.get("epochs_run", 0),
            "intermediate": [t.intermediate_values[k] for k in sorted(t.intermediate_values)],
            "model_dir": t.user_attrs.get("model_dir"), "log": t.user_attrs.get("log"),
            "error": t.user_attrs.get("error"),
        })
    complete = [t for t in result.trials if t["state"] == "COMPLETE"]
    if complete:
        pick = max if direction == "maximize" else min
        result.best = pick(complete, key=lambda t: t["value"])
        worst = min if direction == "maximize" else max
        result.worst_value = worst(complete, key=lambda t: t["value"])["value"]
    return result
