"""Distributed training the PyTorchJob way: one job of N workers, one rendezvous, rank 0 records.

The platform sizes the job (`Platform.plan_workers`: `workers: auto` as many as the cores free
for it allow, a number exactly that many) and runs it (`Platform.run_training`: worker
processes here or in containers, a PyTorchJob or Indexed Job on a cluster); this step says what
to train, records how many workers ran and why, and reads back what rank 0 wrote:
metrics.jsonl (one line per epoch), checkpoints, model/. `batch_size` is the job's batch, shared
out among the workers, so the same arguments train the same model whatever the count.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from minikf.platforms.base import TrainRequest
from minikf.runtime.errors import StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome
from minikf.workload.contract import SCHEDULES, SHARES, WORKER_MODULE


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        raise StepFailed(f"training wrote no {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _mirrors(ctx: StepContext) -> list[str]:
    """Where a platform that fetches the data itself (a cluster) gets it from."""
    mirrors = ctx.arg("mirrors", ctx.params.get("mirrors", ""), (str, list))
    if isinstance(mirrors, str):
        mirrors = [m.strip() for m in mirrors.split(",") if m.strip()]
    return mirrors


def requested_workers(ctx: StepContext) -> int | None:
    """`workers`: a count of at least 1, or `auto` (None), the default."""
    value = ctx.arg("workers", "auto", (int, str))
    if value == "auto":
        return None
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1 or isinstance(value, bool):
        raise StepFailed(f"step {ctx.name}: workers must be a number >= 1 or auto, got {value!r}")
    return workers


def train_request(ctx: StepContext) -> TrainRequest:
    sample = ctx.arg("sample", ctx.params.get("sample", False), (bool, str))
    schedule = ctx.arg("schedule", "constant", str)
    if schedule not in SCHEDULES:
        raise StepFailed(f"step {ctx.name}: schedule must be one of {', '.join(SCHEDULES)}, "
                         f"got {schedule!r}")
    shares = ctx.arg("shares", "speed", str)
    if shares not in SHARES:
        raise StepFailed(f"step {ctx.name}: shares must be one of {', '.join(SHARES)}, "
                         f"got {shares!r}")
    return TrainRequest(
        name=ctx.unique_name(), workers=requested_workers(ctx), epochs=ctx.arg("epochs", 3, int),
        batch_size=ctx.arg("batch_size", 64, int), lr=float(ctx.arg("lr", 0.002, (int, float))),
        data_dir=Path(ctx.arg("data_dir", kind=str)), out=ctx.workdir / "train",
        log_path=ctx.log_path, timeout_s=ctx.timeout, mirrors=_mirrors(ctx),
        sample=sample not in (False, "false", "False"), schedule=schedule,
        augment=ctx.arg("augment", False, (bool, str)) not in (False, "false", "False"),
        shares=shares,
    )


def epoch_series(rows: list[dict]) -> dict[str, list[float]]:
    """Per epoch: the job's loss, accuracy, images/s and seconds, and each worker's own as
    rankN.NAME, with the images it trained (ranks on one host share steps by speed), where the
    worker recorded them (images built before they did have none)."""
    series = {name: [r[name] for r in rows] for name in ("loss", "accuracy", "images_per_s",
                                                         "seconds") if all(name in r for r in rows)}
    for rank in range(len(rows[0].get("workers") or []) if rows else 0):
        for name in ("loss", "accuracy", "images", "images_per_s", "seconds"):
            values = [_worker(r, rank).get(name) for r in rows]
            if all(v is not None for v in values):
                series[f"rank{rank}.{name}"] = values
    return series


def _worker(row: dict, rank: int) -> dict:
    workers = row.get("workers") or []
    return workers[rank] if rank < len(workers) and isinstance(workers[rank], dict) else {}


def run(ctx: StepContext) -> StepOutcome:
    request = train_request(ctx)
    plan = ctx.platform.plan_workers(request)
    request = replace(request, workers=plan.workers)
    ctx.status(plan.reason)
    with ctx.open_log() as log:
        log.write(f"minikf: {plan.reason}\n")
    request.out.mkdir(parents=True, exist_ok=True)
    ctx.platform.run_training(request, ctx.resources, status=ctx.status)
    out = request.out
    rows = _read_metrics(out / "metrics.jsonl")
    if len(rows) != request.epochs:
        raise StepFailed(f"expected {request.epochs} epochs in metrics.jsonl, found {len(rows)}")
    last = rows[-1]
    metrics = {"loss": last["loss"], "train_accuracy": last["accuracy"], "epochs": len(rows),
               **plan.metrics(), "images_per_s": round(last["images_per_s"], 1),
               "checkpoints": len(list((out / "checkpoints").glob("epoch-*.pt")))}
    series = epoch_series(rows)
    outputs = {"model_dir": str(out / "model"), "train_dir": str(out)}
    return StepOutcome(metrics=metrics, outputs=outputs, series=series)


OUTPUTS = ("loss", "train_accuracy", "epochs", "workers", "workers_requested", "workers_reason",
           "free_cores", "images_per_s", "checkpoints", "model_dir", "train_dir")

KIND = StepKind("train", run, warm_modules=(WORKER_MODULE,), outputs=OUTPUTS)
