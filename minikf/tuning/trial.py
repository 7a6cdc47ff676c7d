"""One trial: the journey's own train worker with the trial's parameters; after every epoch its
checkpoint is scored on the test split, reported to Optuna, and the trial stopped if the pruner
says it is a bad one (Katib's early stopping, done the same way: on intermediate values).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch

from minikf.platforms.base import Platform
from minikf.platforms.jobs import how_it_ended
from minikf.runtime.ports import free_port
from minikf.runtime.processes import RunResources, stop_handle
from minikf.tuning.spec import TuningSpec
from minikf.workload.contract import worker_argv, worker_env
from minikf.workload.model import FashionCNN


class TrialFailed(Exception):
    """A trial's training exited badly; counted against max_failed_trials."""


class SearchStopped(Exception):
    """The run is being torn down (timeout, Ctrl-C, failure): no new trial may start."""


@dataclass
class LaunchGate:
    """Closed by the run's cleanup before it stops processes, so a trial thread that outlives
    its step (timeout, Ctrl-C) cannot start workers nobody will stop."""

    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            self.closed = True


@dataclass
class TrialEnv:
    """What every trial shares: the data, where to work and log, and how to launch."""

    data_dir: Path
    workdir: Path
    logs: Path
    platform: Platform
    resources: RunResources
    gate: LaunchGate = field(default_factory=LaunchGate)


class CheckpointScorer:
    """Accuracy and cross-entropy of a checkpoint on test.npz (loaded once, shared by trials)."""

    def __init__(self, data_dir: Path) -> None:
        with np.load(data_dir / "test.npz") as npz:
            self.x, self.y = torch.from_numpy(npz["x"]), torch.from_numpy(npz["y"])

    def __call__(self, checkpoint: Path) -> dict[str, float]:
        model = FashionCNN()
        model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(self.x[i:i + 1024]) for i in range(0, len(self.x), 1024)])
        loss = torch.nn.functional.cross_entropy(logits, self.y).item()
        return {"accuracy": (logits.argmax(1) == self.y).float().mean().item(), "loss": loss}


def suggest(trial: optuna.Trial, spec: TuningSpec) -> dict[str, float | int]:
    """The trial's parameters from the spec's search space; fixed defaults for the rest."""
    chosen: dict[str, float | int] = {"lr": 0.002, "batch_size": 32, "epochs": 1}
    for p in spec.parameters:
        if p.type == "categorical":
            value = trial.suggest_categorical(p.name, p.values)
        elif p.type == "int":
            value = trial.suggest_int(p.name, int(p.min), int(p.max), step=int(p.step or 1),
                                      log=p.log)
        else:
            value = trial.suggest_float(p.name, p.min, p.max, step=p.step, log=p.log)
        chosen[p.name] = int(value) if p.name != "lr" else float(value)
    return chosen


def _epochs_done(metrics_file: Path) -> int:
    try:
        text = metrics_file.read_text()
    except FileNotFoundError:
        return 0
    return text.count("\n")  # only complete lines: the worker writes one per epoch


def watch_epochs(procs: list, out: Path, scorer: CheckpointScorer
                 ) -> Iterator[tuple[int, dict[str, float]]]:
    """(epoch, test scores) for each epoch the worker in `out` finishes, while it trains."""
    scored = 0
    while True:
        finished = all(p.poll() is not None for p in procs)
        for epoch in range(scored + 1, _epochs_done(out / "metrics.jsonl") + 1):
            scored = epoch
            yield epoch, scorer(out / "checkpoints" / f"epoch-{epoch}.pt")
        if finished:
            return
        time.sleep(0.1)


def train_argv(data_dir: Path, out: Path, params: dict) -> list[str]:
    return worker_argv(data_dir, out, params["epochs"], params["batch_size"], params["lr"])


def run_trial(trial: optuna.Trial, spec: TuningSpec, env: TrialEnv, scorer: CheckpointScorer,
              log) -> float:
    params = suggest(trial, spec)
    out = env.workdir / f"trial-{trial.number}"
    out.mkdir(parents=True)
    argv = train_argv(env.data_dir, out, params)
    port = free_port()
    with env.gate.lock:
        if env.gate.closed:
            raise SearchStopped("the run is stopping")
        procs = [env.platform.launch(argv, worker_env(rank, spec.workers, port),
                                     env.logs / f"trial-{trial.number}-worker-{rank}.log",
                                     env.resources)
                 for rank in range(spec.workers)]
    trial.set_user_attr("log", str(env.logs / f"trial-{trial.number}-worker-0.log"))
    log(f"trial {trial.number} started: {json.dumps(params)}")
    metric, scored, value = spec.objective.metric, 0, float("nan")
    for epoch, scores in watch_epochs(procs, out, scorer):
        scored, value = epoch, scores[metric]
        trial.report(value, epoch)
        trial.set_user_attr("epochs_run", epoch)
        if epoch < params["epochs"] and trial.should_prune():  # the last one saves nothing
            for proc in procs:
                stop_handle(proc)  # a process group, or a container
            log(f"trial {trial.number} stopped early at epoch {epoch}: {metric}={value:.4f}")
            raise optuna.TrialPruned(f"{metric}={value:.4f} at epoch {epoch}")
    bad = [(rank, p) for rank, p in enumerate(procs) if p.returncode != 0]
    problem = ""
    if bad:
        problem = (f"trial {trial.number}: worker {bad[0][0]} {how_it_ended(bad[0][1])} "
                   f"(see {env.logs / f'trial-{trial.number}-worker-{bad[0][0]}.log'})")
    elif scored != params["epochs"]:
        problem = f"trial {trial.number}: {scored} of {params['epochs']} epochs recorded"
    if problem:
        trial.set_user_attr("error", problem)
        log(problem)
        raise TrialFailed(problem)
    trial.set_user_attr("model_dir", str(out / "model"))
    log(f"trial {trial.number} finished: {metric}={value:.4f}")
    return value
