"""What a run's results keep of its work dir, which the engine deletes at the end.

A step output naming a file or folder in the work dir would point at nothing once the run is
over. Before the cleanup, a model (any size up to MODEL_LIMIT) or a small artifact (up to
SMALL_LIMIT) is copied into the results dir under outputs/<step>/ and the output then names the
copy; anything else (a data set: the download step can always fetch it again, and lineage keeps
its checksums) is set to null and listed in the step's `gone` with the path it had.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from minikf.metadata.lineage import artifact_kind
from minikf.results.model import RunResult
from minikf.runtime import files
from minikf.runtime.errors import MinikfError

MODEL_LIMIT = 512 << 20
SMALL_LIMIT = 4 << 20
KEPT_DIR = "outputs"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _inside(value: Any, workdir: Path) -> Path | None:
    if not isinstance(value, str) or not value.startswith("/"):
        return None
    path = Path(value)
    try:
        inside = path.resolve().is_relative_to(workdir)
    except (OSError, ValueError):
        return None
    return path if inside and path.exists() else None


def _slots(outputs: dict) -> list[tuple[dict, str, str, str]]:
    """(holder, key, label, kind) for each path-like value: the outputs themselves, and the
    entries of a typed `artifacts` list (a KFP run's Datasets and Models)."""
    slots = [(outputs, key, key, artifact_kind(key)) for key in outputs]
    for i, entry in enumerate(outputs.get("artifacts") or []):
        if isinstance(entry, dict) and "path" in entry:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(entry.get("name", i)))
            slots.append((entry, "path", f"artifacts.{name}", str(entry.get("kind", "artifact"))))
    return slots


def keep_outputs(run: RunResult, workdir: Path, results_dir: Path) -> list[str]:
    """Copy or mark every output that names a path in `workdir`; returns problems, if any."""
    workdir = workdir.resolve()
    problems: list[str] = []
    for step in run.steps:
        for holder, key, label, kind in _slots(step.outputs):
            path = _inside(holder[key], workdir)
            if path is None:
                continue
            if kind == "dataset" or _size(path) > (MODEL_LIMIT if kind == "model" else SMALL_LIMIT):
                step.gone[label], holder[key] = str(path), None
                continue
            target = results_dir / KEPT_DIR / step.name / (label + path.suffix)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir():
                    files.copy_tree(path, target)
                else:
                    files.write_bytes(target, path.read_bytes())
            except (OSError, MinikfError) as exc:  # a full disk: said, and the run still ends
                problems.append(f"{step.name}.{label}: not kept: {exc}")
                step.gone[label], holder[key] = str(path), None
                continue
            holder[key] = str(target)
    return problems
