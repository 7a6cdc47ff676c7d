"""What the dashboard shows: the runs and bundles found in results dirs, and the lineage store's
runs, merged by run id. Read-only: nothing here writes or deletes a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from minikf.metadata import default_db_path
from minikf.metadata.store import MetadataStore, RunRecord
from minikf.runtime.errors import MinikfError

MAX_DEPTH = 4  # results/<bundle>/<platform>/<scenario>
_SKIP = {"logs", "outputs", "model", "sections", "misclassified", "checkpoints", "warm"}


@dataclass
class RunEntry:
    run_id: str
    scenario: str
    platform: str
    status: str
    started: str
    duration_s: float = 0.0
    path: Path | None = None  # the results dir with this run's results.json, if it still has it
    bundle: str = ""  # the conformance bundle it belongs to
    record: RunRecord | None = None  # from the lineage store
    note: str = ""


@dataclass
class BundleEntry:
    name: str
    path: Path
    platform: str
    status: str
    started: str
    counts: dict = field(default_factory=dict)


@dataclass
class Catalog:
    runs: dict[str, RunEntry] = field(default_factory=dict)
    bundles: dict[str, BundleEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def sorted_runs(self) -> list[RunEntry]:
        return sorted(self.runs.values(), key=lambda r: r.started, reverse=True)


def _walk(root: Path):
    """Folders under root holding results.json or summary.json, depth-limited."""
    base = len(root.parts)
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
        if len(here.parts) - base >= MAX_DEPTH:
            dirs[:] = []
        if "results.json" in files or "summary.json" in files:
            yield here, set(files)


def _load(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def scan(dirs: list[Path], db: Path | None = None) -> Catalog:
    catalog = Catalog()
    for root in dirs:
        if not root.is_dir():
            continue
        for folder, files in _walk(root.resolve()):
            if "summary.json" in files:
                _add_bundle(catalog, folder)
            if "results.json" in files:
                _add_run(catalog, folder)
    _add_store(catalog, db or default_db_path())
    return catalog


def _add_bundle(catalog: Catalog, folder: Path) -> None:
    data = _load(folder / "summary.json")
    if not data or "scenarios" not in data:
        catalog.problems.append(f"{folder / 'summary.json'}: not a conformance summary")
        return
    counts: dict[str, int] = {}
    for entry in data.get("scenarios", []):
        counts[entry.get("status", "?")] = counts.get(entry.get("status", "?"), 0) + 1
    status = "failed" if counts.get("failed") or counts.get("timeout") else (
        "passed" if counts.get("passed") else "skipped")
    catalog.bundles.setdefault(folder.name, BundleEntry(folder.name, folder, data.get("platform", "?"),
                                                        status, data.get("started", ""), counts))


def _add_run(catalog: Catalog, folder: Path) -> None:
    data = _load(folder / "results.json")
    if not data or not data.get("run_id"):
        catalog.problems.append(f"{folder / 'results.json'}: not a minikf results.json")
        return
    bundle = next((p.name for p in folder.parents if (p / "summary.json").is_file()), "")
    catalog.runs.setdefault(str(data["run_id"]), RunEntry(
        str(data["run_id"]), str(data.get("scenario", "?")), str(data.get("platform", "?")),
        str(data.get("status", "?")), str(data.get("started", "")),
        float(data.get("duration_s") or 0.0), folder, bundle))


def _add_store(catalog: Catalog, db: Path) -> None:
    if not db.is_file():
        return
    try:
        with MetadataStore(db, read_only=True) as store:
            records = store.list_runs(limit=1000)
    except MinikfError as exc:
        catalog.problems.append(str(exc))
        return
    for record in records:
        entry = catalog.runs.get(record.run_id)
        if entry:
            entry.record = record
            continue
        folder = Path(record.results_dir) if record.results_dir else None
        note = ""
        if folder and (folder / "results.json").is_file():
            other = (_load(folder / "results.json") or {}).get("run_id")
            if other != record.run_id:
                note, folder = f"its results dir now holds run {other}", None
        elif folder:
            note, folder = "its results dir is gone", None
        catalog.runs[record.run_id] = RunEntry(
            record.run_id, record.scenario, record.platform, record.status, record.started,
            record.duration_s, folder, record=record, note=note)


def store_record(run_id: str, db: Path | None = None) -> RunRecord | None:
    path = db or default_db_path()
    if not path.is_file():
        return None
    with MetadataStore(path, read_only=True) as store:
        try:
            return store.get(run_id)
        except MinikfError:
            return None


def runs_with_model(sha256: str, db: Path | None = None) -> list[RunRecord]:
    path = db or default_db_path()
    if not path.is_file():
        return []
    with MetadataStore(path, read_only=True) as store:
        return [store.get(r) for r in store.runs_with_artifact(sha256, kind="model")]
