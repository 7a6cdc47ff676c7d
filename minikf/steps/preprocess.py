"""IDX -> normalized float tensors (train.npz, test.npz)."""

from __future__ import annotations

from pathlib import Path

from minikf.runtime.errors import StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome
from minikf.workload import fashion_data


def run(ctx: StepContext) -> StepOutcome:
    raw = Path(ctx.arg("raw_dir", kind=str))
    out = Path(ctx.arg("out_dir", str(ctx.workdir / "data"), str))
    try:
        counts = fashion_data.preprocess(raw, out)
    except (fashion_data.IdxError, FileNotFoundError) as exc:
        raise StepFailed(str(exc)) from exc
    return StepOutcome(
        metrics={"train_images": counts["train"], "test_images": counts["test"]},
        outputs={"data_dir": str(out)},
    )


OUTPUTS = ("train_images", "test_images", "data_dir")

KIND = StepKind("preprocess", run, outputs=OUTPUTS)
