"""Fetch the Fashion-MNIST files from mirrors, tried in order, verified by MD5.

args: mirrors (a list, or comma-separated), sample (the bundled sample's checksums), dest,
timeout (seconds a mirror may send nothing before the next one is tried; default 30). What each
passed-over mirror gave is in the step's log and its `mirror_failures` output."""

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
    timeout = float(ctx.arg("timeout", 30, (int, float)))
    skipped: list[str] = []
    try:
        found = fashion_data.download(dest, mirrors, dict(checksums), timeout=timeout,
                                      progress=_progress(ctx), skipped=skipped)
    except fashion_data.DownloadError as exc:
        raise StepFailed(str(exc)) from exc
    finally:
        if skipped:
            with ctx.open_log() as log:
                log.writelines(f"passed over: {line}\n" for line in skipped)
    size = sum((dest / name).stat().st_size for name in found)
    return StepOutcome(metrics={"files": len(found), "bytes": size},
                       outputs={"raw_dir": str(dest), "mirror_failures": skipped})


OUTPUTS = ("files", "bytes", "raw_dir", "mirror_failures")

KIND = StepKind("download", run, outputs=OUTPUTS)
