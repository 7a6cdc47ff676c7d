"""Restore a snapshot into a folder, and re-run a run snapshot from there.

A restored run snapshot:

    DIR/snapshot.json          the manifest
    DIR/scenario/FILE.yaml     the scenario as it ran
    DIR/files/N-NAME           files the scenario named (${scenario_dir}/...)
    DIR/inputs/PARAM/...       the data its parameters named
    DIR/results/...            its results, logs and model (results/model/)

A notebook snapshot comes back as the folder it was (DIR/notebook/...).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from minikf.metadata.store import RunRecord
from minikf.runtime.errors import MinikfError
from minikf.runtime.files import write_text
from minikf.snapshots.store import SnapshotStore

_UNSET = ("${workdir}", "${results}", "<secret>")


def _safe(relative: str) -> str:
    """A manifest path that stays inside the restore folder."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise MinikfError(f"snapshot manifest names a path outside its folder: {relative!r}", 3)
    return relative


def restore(store: SnapshotStore, ref: str, dest: Path) -> dict:
    """Write every file of the snapshot under `dest` (new or empty; made 0700), each checked
    against its sha256. Returns the manifest."""
    manifest = store.load(ref)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MinikfError(f"{dest} exists and is not an empty folder; restore into a new one", 2)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(dest, 0o700)
    try:
        for entry in manifest["files"]:
            target = dest / _safe(entry["path"])
            _private_parents(target.parent, dest)
            store.read_verified(manifest["id"], entry, target)
        write_text(dest / "snapshot.json", json.dumps(manifest, indent=1, sort_keys=True),
                   perms=0o600)
    except BaseException:  # a half-restored folder would look like a whole one
        for path in [dest] if created else list(dest.iterdir()):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise
    return manifest


def _private_parents(folder: Path, top: Path) -> None:
    missing = []
    while folder != top and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700)


@dataclass
class RerunPlan:
    scenario: Path
    params: dict = field(default_factory=dict)
    platform: str = "local"


def plan_rerun(manifest: dict, restored: Path) -> RerunPlan:
    """The scenario and parameters that re-run a restored run snapshot: the same parameters,
    with the data they named read from the restored copy."""
    if manifest.get("kind") != "run":
        raise MinikfError(f"snapshot {manifest['id']} is of a notebook folder, not a run: restore it "
                          "with `minikf snapshot restore` instead", exit_code=2)
    restored = Path(restored)
    original = restored / manifest["code"]["scenario_file"]
    text = original.read_text()
    for rel, named in manifest.get("references", {}).items():
        text = text.replace("${scenario_dir}" + rel, "${scenario_dir}/../" + named)
    scenario = original.with_name(f"{original.stem}.rerun{original.suffix}")
    write_text(scenario, text, perms=0o600)
    params = {}
    for name, value in manifest.get("parameters", {}).get("scenario", {}).items():
        if name in manifest.get("inputs", {}):
            params[name] = str(restored / manifest["inputs"][name])
        elif not (isinstance(value, str) and any(u in value for u in _UNSET)):
            params[name] = value
    return RerunPlan(scenario, params, manifest["run"]["platform"])


@dataclass
class Comparison:
    data_files: int
    data_changed: list[str]
    metrics: dict[str, tuple[float | None, float | None]]  # step.name -> (original, re-run)

    @property
    def data_same(self) -> bool:
        return self.data_files > 0 and not self.data_changed

    def delta(self, metric: str) -> float | None:
        """Re-run minus original for the last step that reported `metric`."""
        pairs = [v for k, v in self.metrics.items() if k.split(".", 1)[1] == metric
                 and None not in v]
        return pairs[-1][1] - pairs[-1][0] if pairs else None


def compare(manifest: dict, rerun: RunRecord) -> Comparison:
    """The re-run against the snapshot: its data (sha256, by file) and its metrics."""
    before = manifest.get("data", {})
    after = {a.name: a.sha256 for a in rerun.artifacts if a.kind == "dataset"}
    changed = sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
    metrics: dict[str, tuple[float | None, float | None]] = {}
    old = manifest.get("metrics", {})
    for step in sorted(set(old) | set(rerun.metrics)):
        for name in sorted(set(old.get(step, {})) | set(rerun.metrics.get(step, {}))):
            metrics[f"{step}.{name}"] = (old.get(step, {}).get(name),
                                         rerun.metrics.get(step, {}).get(name))
    return Comparison(len(set(before) | set(after)), changed, metrics)


def comparison_text(comparison: Comparison, skip=("seconds", "duration", "per_s", "_ms")) -> str:
    lines = []
    if comparison.data_same:
        lines.append(f"data: same ({comparison.data_files} files, identical sha256)")
    elif comparison.data_files == 0:
        lines.append("data: none recorded")
    else:
        lines.append(f"data: DIFFERENT in {len(comparison.data_changed)} of {comparison.data_files}"
                     f" files: {', '.join(comparison.data_changed[:6])}")
    lines.append(f"{'metric':34} {'snapshot':>14} {'re-run':>14}  delta")
    for key, (a, b) in comparison.metrics.items():
        if any(s in key for s in skip):  # timings differ run to run; not what is compared
            continue
        delta = f"{b - a:+.4g}" if a is not None and b is not None else ""
        lines.append(f"{key:34} {_fmt(a):>14} {_fmt(b):>14}  {delta}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
