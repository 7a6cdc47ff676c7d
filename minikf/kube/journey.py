"""The journey's train and serve steps on a cluster platform (one with run_training/serve_model).

The steps stay one module each; on such a platform they hand their work to these functions and
keep the rest (reading metrics.jsonl, the outputs they return) unchanged.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from minikf.errors import MinikfError
from minikf.steps.base import StepContext, StepFailed


def _fail(exc: Exception) -> StepFailed:
    return StepFailed(exc.message if isinstance(exc, MinikfError) else str(exc))


def run_name(ctx: StepContext) -> str:
    """A name unique per run and step, valid as a Kubernetes object name."""
    return f"minikf-{ctx.name}-{secrets.token_hex(3)}"


def train_on_cluster(ctx: StepContext, out: Path, workers: int, epochs: int) -> Path:
    """One training job of `workers` pods; model/ and metrics.jsonl come back into `out`."""
    from minikf.platforms.kubernetes import ClusterStepFailed, TrainRequest

    mirrors = ctx.arg("mirrors", ctx.params.get("mirrors", ""), (str, list))
    if isinstance(mirrors, str):
        mirrors = [m.strip() for m in mirrors.split(",") if m.strip()]
    request = TrainRequest(
        name=run_name(ctx), workers=workers, epochs=epochs,
        batch_size=ctx.arg("batch_size", 64, int), lr=float(ctx.arg("lr", 0.002, (int, float))),
        mirrors=mirrors, sample=bool(ctx.arg("sample", ctx.params.get("sample", False), (bool, str))
                                    not in (False, "false", "False")),
        timeout_s=ctx.timeout,
    )
    try:
        return ctx.platform.run_training(request, ctx.resources, ctx.log_path, out, status=ctx.status)
    except (ClusterStepFailed, MinikfError) as exc:
        raise _fail(exc) from None


def serve_on_cluster(ctx: StepContext, model_dir: Path, token: str) -> str:
    """An InferenceService for `model_dir`; returns the local URL that reaches it."""
    from minikf.platforms.kubernetes import ClusterStepFailed

    try:
        return ctx.platform.serve_model(run_name(ctx), model_dir, token, ctx.resources,
                                        timeout_s=ctx.timeout, status=ctx.status)
    except (ClusterStepFailed, MinikfError) as exc:
        raise _fail(exc) from None
