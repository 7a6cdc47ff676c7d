"""Create snapshots: of a run (found by its results dir or its id in the lineage store) or of a
notebook folder. Files go into the owner's store by sha256; the manifest says what each is."""

from __future__ import annotations

import json
import platform as host
import re
import stat
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

from minikf.metadata import default_db_path
from minikf.metadata.store import MetadataStore, RunRecord
from minikf.runtime.errors import MinikfError
from minikf.snapshots import owner_of, store_for
from minikf.snapshots.store import SnapshotStore

MANIFEST_SCHEMA = 1
# Never kept: Jupyter/IPython runtime state (kernel connection files, tokens) and caches.
SKIP_DIRS = {".jupyter", ".ipython", ".ipynb_checkpoints", "__pycache__", ".local", ".cache", ".git"}
SKIP_FILES = {"token"}
_REFERENCE = re.compile(r"\$\{scenario_dir\}(/[^\s\"'\]},]+)")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def files_under(root: Path) -> list[Path]:
    """Regular files under `root` (or root itself), sorted; links, sockets and SKIP_* left out."""
    root = Path(root)
    if root.is_file() and not root.is_symlink():
        return [root]
    found = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p in SKIP_DIRS for p in parts[:-1]) or path.name in SKIP_FILES:
            continue
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            found.append(path)
    return found


class Collector:
    """Puts files into the store and lists them for the manifest, counting what was new."""

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store
        self.files: list[dict] = []
        self.new_objects = self.reused_objects = self.new_bytes = 0

    def add_tree(self, source: Path, prefix: str, role) -> None:
        """Every file under `source` at `prefix/<relative path>` (a file: at `prefix` itself);
        role(relative) names its role."""
        source = Path(source)
        for path in files_under(source):
            relative = path.name if source.is_file() else path.relative_to(source).as_posix()
            self._count(stored := self.store.put(path))
            self.files.append({"path": prefix if source.is_file() else f"{prefix}/{relative}",
                               "role": role(relative),
                               "sha256": stored.sha256, "size": stored.size,
                               "mode": stat.S_IMODE(path.stat().st_mode)})

    def add_bytes(self, data: bytes, path: str, role: str) -> None:
        self._count(stored := self.store.put_bytes(data))
        self.files.append({"path": path, "role": role, "sha256": stored.sha256,
                           "size": stored.size, "mode": 0o600})

    def _count(self, stored) -> None:
        if stored.new:
            self.new_objects, self.new_bytes = self.new_objects + 1, self.new_bytes + stored.size
        else:
            self.reused_objects += 1

    def stats(self) -> dict:
        return {"files": len(self.files), "objects_new": self.new_objects,
                "objects_reused": self.reused_objects, "bytes_new": self.new_bytes}


def environment() -> dict:
    """What this host would re-run with: Python and every installed distribution's version."""
    packages = {}
    for dist in importlib_metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            packages[name.lower()] = dist.version
    return {"python": host.python_version(), "machine": host.machine(),
            "packages": dict(sorted(packages.items()))}


def image_ids(platform_info: dict) -> dict[str, str]:
    """The Docker image id (sha256 of its config) behind each image the platform named, so a
    later re-run can tell a rebuilt image from the one that ran; '' when it is gone."""
    refs = {k: v for k, v in platform_info.items() if k.endswith("_image") and isinstance(v, str)}
    if not refs:
        return {}
    try:
        import docker

        client = docker.from_env(timeout=10)
    except Exception:  # noqa: BLE001 - no engine here: the tags are what is known
        return dict.fromkeys(refs.values(), "")
    found = {}
    try:
        for ref in refs.values():
            try:
                found[ref] = client.images.get(ref).id
            except Exception:  # noqa: BLE001 - removed since the run
                found[ref] = ""
    finally:
        client.close()
    return found


def _platform_info(results_dir: Path) -> dict:
    try:
        return json.loads((results_dir / "results.json").read_text()).get("platform_info", {})
    except (OSError, ValueError):
        return {}


def _open_lineage(db: Path | None) -> MetadataStore:
    path = Path(db) if db else default_db_path()
    if not path.exists():
        raise MinikfError(f"no lineage store at {path}: snapshots of runs need the run's record "
                          "(runs are recorded unless MINIKF_METADATA_DB=off)", exit_code=2)
    return MetadataStore(path)


def find_run(ref: str, lineage: MetadataStore) -> RunRecord:
    """A run from its results dir (results.json's run_id) or its id (a unique prefix)."""
    path = Path(ref)
    if (path / "results.json").is_file():
        try:
            run_id = json.loads((path / "results.json").read_text())["run_id"]
        except (OSError, ValueError, KeyError) as exc:
            raise MinikfError(f"{path / 'results.json'}: no run_id in it ({exc})", 2) from None
        return lineage.get(lineage.resolve(run_id))
    if path.exists():
        raise MinikfError(f"{path}: not a run's results dir (no results.json)", 2)
    return lineage.get(lineage.resolve(ref))


def _local_paths(params: dict, results_dir: Path) -> dict[str, Path]:
    """The parameters whose value is a file or folder on this host (the run's inputs), other
    than the run's own results."""
    found = {}
    for name, value in params.items():
        if not isinstance(value, str) or not value.startswith("/") or "${" in value:
            continue
        path = Path(value)
        if path.exists() and not path.resolve().is_relative_to(results_dir.resolve()):
            found[name] = path
    return found


def _references(text: str, scenario_dir: Path) -> dict[str, Path]:
    """`${scenario_dir}/REL` in the scenario's text that name a file or folder: REL -> path."""
    found = {}
    for rel in sorted(set(_REFERENCE.findall(text))):
        path = (scenario_dir / rel.lstrip("/")).resolve()
        if path.exists():
            found[rel] = path
    return found


def _result_role(relative: str) -> str:
    return "model" if relative.startswith("model/") else "results"


def _input_role(relative: str) -> str:
    """A notebook, code (a scenario, a script) or data, by the file's name."""
    if relative.endswith(".ipynb"):
        return "notebook"
    return "code" if relative.endswith((".yaml", ".yml", ".py")) else "data"


def snapshot_run(ref: str, user: str | None = None, home: Path | None = None,
                 db: Path | None = None) -> dict:
    """Snapshot a run: returns the stored manifest (with its id)."""
    with _open_lineage(db) as lineage:
        run = find_run(ref, lineage)
        text = lineage.scenario_text(run.run_id)
        results_dir = Path(run.results_dir)
        if not results_dir.is_dir():
            raise MinikfError(f"run {run.run_id}: its results dir {results_dir} is gone; snapshot a "
                              "run before deleting its work", exit_code=2)
        if not text:
            raise MinikfError(f"run {run.run_id}: the lineage store has no scenario file for it "
                              "(recorded by minikf runs since snapshots exist); run it again", 2)
        owner = owner_of(results_dir, home)
        if user and owner and user != owner:
            raise MinikfError(f"run {run.run_id} belongs to profile {owner}, not {user}", exit_code=3)
        owner = user or owner
        store = store_for(owner, home)
        manifest = _run_manifest(store, run, text, results_dir, owner)
        snap_id = store.save_manifest(manifest)
        lineage.link_snapshot(snap_id, run.run_id, "of", manifest["created"], str(store.root))
    return {**manifest, "id": snap_id}


def _run_manifest(store: SnapshotStore, run: RunRecord, text: str, results_dir: Path,
                  owner: str | None) -> dict:
    collect = Collector(store)
    scenario_params = run.params.get("scenario", {})
    inputs = {name: (path, f"inputs/{name}" + (f"/{path.name}" if path.is_file() else ""))
              for name, path in _local_paths(scenario_params, results_dir).items()}
    for path, where in inputs.values():
        collect.add_tree(path, where, _input_role)
    references = _references(text, Path(run.scenario_path).parent)
    named = {}
    for index, (rel, path) in enumerate(references.items()):
        named[rel] = f"files/{index}-{path.name}"
        collect.add_tree(path, named[rel], _input_role)
    scenario_file = Path(run.scenario_path).name
    collect.add_bytes(text.encode(), f"scenario/{scenario_file}", "code")
    collect.add_tree(results_dir, "results", _result_role)
    data = {a.name: a.sha256 for a in run.artifacts if a.kind == "dataset"}
    info = _platform_info(results_dir)
    return {
        "schema": MANIFEST_SCHEMA, "kind": "run", "created": _now(), "owner": owner or "",
        "run": {"run_id": run.run_id, "scenario": run.scenario, "platform": run.platform,
                "status": run.status, "started": run.started, "results_dir": str(results_dir)},
        "code": {"code_version": run.code_version, "minikf_version": run.minikf_version,
                 "scenario_path": run.scenario_path, "scenario_sha256": run.scenario_sha256,
                 "scenario_file": f"scenario/{scenario_file}"},
        "parameters": run.params,
        "inputs": {name: where for name, (_, where) in inputs.items()},
        "references": named,
        "environment": {"versions": run.versions, "image": run.image, "platform_info": info,
                        "image_ids": image_ids(info), **environment()},
        "data": data,
        "model": {a.name: a.sha256 for a in run.artifacts if a.kind == "model"},
        "metrics": run.metrics,
        "files": collect.files,
        "stats": collect.stats(),
    }


def snapshot_notebook(directory: Path, user: str | None = None, home: Path | None = None) -> dict:
    """Snapshot a notebook folder (a profile's work dir, say): its notebooks and files, and the
    environment they run in; Jupyter's runtime state and tokens are left out."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MinikfError(f"--notebook {directory}: not a folder", exit_code=2)
    owner = owner_of(directory, home)
    if user and owner and user != owner:
        raise MinikfError(f"{directory} belongs to profile {owner}, not {user}", exit_code=3)
    owner = user or owner
    store = store_for(owner, home)
    collect = Collector(store)
    collect.add_tree(directory, "notebook", _input_role)
    if not collect.files:
        raise MinikfError(f"--notebook {directory}: no files to keep", exit_code=2)
    manifest = {"schema": MANIFEST_SCHEMA, "kind": "notebook", "created": _now(),
                "owner": owner or "", "notebook": {"dir": str(directory.resolve())},
                "environment": environment(), "files": collect.files, "stats": collect.stats()}
    snap_id = store.save_manifest(manifest)
    return {**manifest, "id": snap_id}
