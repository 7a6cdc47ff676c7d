"""Collect a run's lineage for the store: the engine calls collect() before its cleanup removes
the work dir (so data files can still be checksummed) and save() once the status is final.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minikf.metadata import default_db_path
from minikf.metadata.store import Artifact, MetadataStore, RunRecord
from minikf.scenario.templating import TemplateError, render

MAX_FILES_PER_OUTPUT = 2000
_SECRET = "<secret>"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(root: Path) -> list[tuple[str, Path, str, int]]:
    """(name relative to root, path, sha256, size) for a file or every file under a folder."""
    if root.is_file():
        return [(root.name, root, sha256_file(root), root.stat().st_size)]
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        files += [Path(folder) / n for n in sorted(names) if (Path(folder) / n).is_file()]
        if len(files) >= MAX_FILES_PER_OUTPUT:
            break
    files = files[:MAX_FILES_PER_OUTPUT]
    return [(str(p.relative_to(root)), p, sha256_file(p), p.stat().st_size) for p in files]


def artifact_kind(key: str) -> str:
    """What a step output holds, from its name: model_dir -> model, raw_dir/data_dir -> dataset."""
    if "model" in key:
        return "model"
    if key.startswith(("data", "raw")) or "dataset" in key:
        return "dataset"
    return "artifact"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of minikf's source (with +dirty for local changes), else its version."""
    from importlib import metadata

    try:
        version = metadata.version("minikf")
    except metadata.PackageNotFoundError:
        version = "unknown"
    source = Path(__file__).resolve().parent.parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--", "minikf"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"minikf {version} (not a git checkout)"
    return f"git {sha[:12]}{'+dirty' if dirty else ''} (minikf {version})"


def image_of(platform_info: dict) -> str:
    """The images the platform ran the workload in (`image`, `runtime_image`, ... as its
    describe() names them); on a platform without images, says so."""
    images = {k: v for k, v in sorted(platform_info.items())
              if (k == "image" or k.endswith("_image")) and v}
    if images:
        return ", ".join(f"{k}={v}" for k, v in images.items())
    return f"none: host processes (python {platform_info.get('python', '?')})"


def _render_redacted(raw: Any, lookup, places: dict[str, str]) -> Any:
    """Rendered like the engine renders it, except that a value using ${secrets.*} is hidden and
    this run's own folders read ${workdir} / ${results}, so runs compare by what matters."""
    if "${secrets." in json.dumps(raw, default=str):
        return _SECRET
    try:
        value = render(raw, lookup)
    except TemplateError:
        return raw  # a step that did not run: keep the template as written
    return _relabel(value, places)


def _relabel(value: Any, places: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _relabel(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [_relabel(v, places) for v in value]
    if isinstance(value, str):
        for path, label in places.items():
            value = value.replace(path, label)
    return value


def _numeric(metrics: dict) -> dict[str, float]:
    found = {}
    for name, value in metrics.items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, (int, float)) and not math.isnan(value):
            found[name] = float(value)
    return found


def _declared(outputs: dict) -> list[tuple[str, str, str]]:
    """(kind, name, path) of a step's outputs: those named *_dir/_path/_file, and any typed
    `artifacts` list ([{kind, name, path}], e.g. a KFP run's Datasets and Models)."""
    found = [(artifact_kind(key), key, value) for key, value in outputs.items()
             if isinstance(value, str) and key.endswith(("_dir", "_path", "_file"))]
    for entry in outputs.get("artifacts") or []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            kind = entry.get("kind") if entry.get("kind") in ("dataset", "model") else "artifact"
            found.append((kind, str(entry.get("name", "artifact")), entry["path"]))
    return found


def _artifacts(steps, produced_in: list[Path]) -> list[Artifact]:
    """Files the run produced, under its work or results dir (a step may name any folder, e.g.
    a server's root; those are not the run's to hash)."""
    found: list[Artifact] = []
    for step in steps:
        if step.status != "passed":
            continue
        for kind, label, value in _declared(step.outputs):
            path = Path(value).resolve()
            if not path.exists() or not any(path.is_relative_to(p) for p in produced_in):
                continue
            found += [Artifact(step.name, kind, f"{label}/{name}", str(p), sha, size)
                      for name, p, sha, size in hash_tree(path)]
    return found


@dataclass
class Lineage:
    record: RunRecord | None
    db_path: Path
    error: str = ""
    scenario_text: str = ""

    def save(self, run) -> None:
        """Store the run with its final status; a store problem is added to the run's message."""
        if self.record is None:
            run.message = (run.message + f" metadata: not recorded: {self.error}").strip()
            return
        self.record.status, self.record.message = run.status, run.message
        self.record.duration_s = run.duration_s
        self.record.metrics = {s.name: m for s in run.steps if (m := _numeric(s.metrics))}
        try:
            with MetadataStore(self.db_path) as store:
                store.save(self.record, self.scenario_text)
        except Exception as exc:  # recording must never turn a passed run into a crash
            run.message = (run.message + f" metadata: not recorded in {self.db_path}: {exc}").strip()


def collect(run, scenario, lookup, results_dir: Path) -> Lineage | None:
    """Everything but the final status, while the run's files still exist; None when disabled.

    Never raises: it runs before the engine's cleanup, which must always happen.
    """
    if os.environ.get("MINIKF_METADATA_DB", "").lower() == "off":
        return None
    try:
        return _collect(run, scenario, lookup, results_dir)
    except Exception as exc:  # reported in the run's message by save()
        return Lineage(None, default_db_path(), f"{type(exc).__name__}: {exc}")


def _collect(run, scenario, lookup, results_dir: Path) -> Lineage:
    # lookup.params are already rendered; hide any the scenario fills from ${secrets.*}.
    params = {"scenario": {
        k: _SECRET if "${secrets." in json.dumps(scenario.params.get(k, ""), default=str) else v
        for k, v in lookup.params.items()}}
    places = {str(lookup.workdir): "${workdir}", str(Path(results_dir).resolve()): "${results}",
              str(results_dir): "${results}"}
    ran = {s.name for s in run.steps}
    for step in scenario.steps:
        if step.name in ran and step.args:
            params[step.name] = {k: _render_redacted(v, lookup, places)
                                 for k, v in step.args.items()}
    record = RunRecord(
        run_id=run.run_id, scenario=run.scenario, platform=run.platform, status=run.status,
        started=run.started, results_dir=str(Path(results_dir).resolve()),
        code_version=code_version(), minikf_version=run.versions.get("minikf", ""),
        image=image_of(run.platform_info), versions=run.versions, params=params,
    )
    try:
        record.artifacts = _artifacts(run.steps, [Path(lookup.workdir).resolve(),
                                                  Path(results_dir).resolve()])
    except OSError as exc:
        record.message = f"artifacts not fully recorded: {exc}"
    text = _scenario_source(scenario, record)
    return Lineage(record, default_db_path(), scenario_text=text)


def _scenario_source(scenario, record: RunRecord) -> str:
    """The scenario file's text (what a snapshot keeps as the run's code); '' without a file."""
    path = getattr(scenario, "path", None)
    if not path:
        return ""
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return ""
    record.scenario_path = str(Path(path).resolve())
    record.scenario_sha256 = hashlib.sha256(raw).hexdigest()
    return raw.decode(errors="replace")
