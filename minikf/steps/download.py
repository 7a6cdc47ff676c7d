"""Fetch the Fashion-MNIST files from mirrors, tried in order, verified by MD5."""

from __future__ import annotations

from pathlib import Path

from minikf.runtime.errors import StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome
from minikf.workload import fashion_data


def _progress(ctx: StepContext):
    def show(name: str, done: int, total: int | None) -> None:
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        ctx.status(f"{name} {size}")

    return show


def run(ctx: StepContext) -> StepOutcome:
    mirrors = ctx.arg("mirrors", fashion_data.DEFAULT_MIRRORS, (list, str))
    if isinstance(mirrors, str):
        mirrors = [m for m in mirrors.split(",") if m]
    checksums = fashion_data.SAMPLE_FILES if ctx.arg("sample", False, bool) else fashion_data.FILES
    dest = Path(ctx.arg("dest", str(ctx.workdir / "raw"), str))
    try:
        found = fashion_data.download(dest, mirrors, dict(checksums), progress=_progress(ctx))
    except fashion_data.DownloadError as exc:
        raise StepFailed(str(exc)) from exc
    size = sum((dest / name).stat().st_size for name in found)
    return StepOutcome(metrics={"files": len(found), "bytes": size}, outputs={"raw_dir": str(dest)})


OUTPUTS = ("files", "bytes", "raw_dir", "mirror_failures")

KIND = StepKind("download", run, outputs=OUTPUTS)
