"""Distributed training the PyTorchJob way: N worker processes, one rendezvous, rank 0 records."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from minikf.engine.resources import free_port, stop_handle
from minikf.platforms.base import TrainRequest
from minikf.steps.base import StepContext, StepFailed, StepOutcome
from minikf.workload.contract import WORKER_MODULE, worker_env


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"code {code}"
    return f"code {code}"


def _launch(ctx: StepContext, workers: int, argv: list[str]) -> list:
    port = free_port()
    procs = []
    for rank in range(workers):
        env = worker_env(rank, workers, port)
        log = ctx.log_path.with_name(f"{ctx.name}-worker-{rank}.log")
        procs.append((rank, log, ctx.platform.launch(argv, env=env, log_path=log,
                                                     resources=ctx.resources)))
    return procs


def _monitor(ctx: StepContext, procs: list) -> None:
    """Wait for all workers; the first non-zero exit stops the rest and fails the step."""
    pending = list(procs)
    while pending:
        for rank, log, proc in list(pending):
            code = proc.poll()
            if code is None:
                continue
            pending.remove((rank, log, proc))
            if code != 0:
                for _, _, other in procs:  # only this job's workers, not the run's servers
                    stop_handle(other)
                raise StepFailed(f"worker {rank} exited with {_describe_exit(code)} (see {log})")
        time.sleep(0.05)


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        raise StepFailed(f"training wrote no {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _train_request(ctx: StepContext, workers: int, epochs: int) -> TrainRequest:
    """For a platform that runs the job itself: it fetches the data where the job runs."""
    mirrors = ctx.arg("mirrors", ctx.params.get("mirrors", ""), (str, list))
    if isinstance(mirrors, str):
        mirrors = [m.strip() for m in mirrors.split(",") if m.strip()]
    sample = ctx.arg("sample", ctx.params.get("sample", False), (bool, str))
    return TrainRequest(
        name=ctx.unique_name(), workers=workers, epochs=epochs,
        batch_size=ctx.arg("batch_size", 64, int), lr=float(ctx.arg("lr", 0.002, (int, float))),
        mirrors=mirrors, sample=sample not in (False, "false", "False"), timeout_s=ctx.timeout,
    )


WARM_MODULES = (WORKER_MODULE,)  # imported ahead where the platform can (steps/__init__.py)


def run(ctx: StepContext) -> StepOutcome:
    data_dir = Path(ctx.arg("data_dir", kind=str))
    workers = ctx.arg("workers", 2, int)
    epochs = ctx.arg("epochs", 3, int)
    out = ctx.workdir / "train"
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", WORKER_MODULE, "--data", str(data_dir),
            "--out", str(out), "--epochs", str(epochs),
            "--batch-size", str(ctx.arg("batch_size", 64, int)),
            "--lr", str(ctx.arg("lr", 0.002, (int, float))),
            "--export-onnx"]  # evaluate and serve then run without importing torch
    if hasattr(ctx.platform, "run_training"):  # a cluster: one job of N pods
        ctx.platform.run_training(_train_request(ctx, workers, epochs), ctx.resources, ctx.log_path,
                                  out, status=ctx.status)
    else:
        _monitor(ctx, _launch(ctx, workers, argv))
    rows = _read_metrics(out / "metrics.jsonl")
    if len(rows) != epochs:
        raise StepFailed(f"expected {epochs} epochs in metrics.jsonl, found {len(rows)}")
    last = rows[-1]
    metrics = {"loss": last["loss"], "train_accuracy": last["accuracy"], "epochs": len(rows),
               "workers": workers, "images_per_s": round(last["images_per_s"], 1),
               "checkpoints": len(list((out / "checkpoints").glob("epoch-*.pt")))}
    series = {"loss": [r["loss"] for r in rows], "accuracy": [r["accuracy"] for r in rows]}
    outputs = {"model_dir": str(out / "model"), "train_dir": str(out)}
    return StepOutcome(metrics=metrics, outputs=outputs, series=series)
