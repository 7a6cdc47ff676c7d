"""The SQLite lineage store: runs, their parameters, artifacts (with checksums) and metrics.

Plain sqlite3 on purpose: one file a user can copy, open with the `sqlite3` tool, or back up;
WAL mode and a busy timeout let concurrent runs (pytest -n 2, conformance -j N) write safely.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minikf.runtime.errors import MinikfError

SCHEMA_VERSION = 2  # 2: sources and snapshots (tables added, nothing changed)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, platform TEXT NOT NULL, status TEXT NOT NULL,
  message TEXT, started TEXT NOT NULL, duration_s REAL, results_dir TEXT,
  code_version TEXT, minikf_version TEXT, image TEXT, versions TEXT
);
CREATE TABLE IF NOT EXISTS params (
  run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  scope TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (run_id, scope, name)
);
CREATE TABLE IF NOT EXISTS artifacts (
  run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  step TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, uri TEXT NOT NULL,
  sha256 TEXT NOT NULL, size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_sha ON artifacts(sha256);
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  step TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
  PRIMARY KEY (run_id, step, name)
);
CREATE TABLE IF NOT EXISTS sources (
  run_id TEXT PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE,
  scenario_path TEXT NOT NULL, scenario_sha256 TEXT NOT NULL, scenario_text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
  snapshot_id TEXT NOT NULL, run_id TEXT NOT NULL, relation TEXT NOT NULL,
  created TEXT NOT NULL, store TEXT NOT NULL, PRIMARY KEY (snapshot_id, run_id, relation)
);
"""


@dataclass
class Artifact:
    step: str
    kind: str  # dataset | model | artifact
    name: str  # the file's path relative to the step output it came from
    uri: str  # where it was when recorded
    sha256: str
    size: int


@dataclass
class RunRecord:
    run_id: str
    scenario: str
    platform: str
    status: str
    started: str
    message: str = ""
    duration_s: float = 0.0
    results_dir: str = ""
    code_version: str = ""
    minikf_version: str = ""
    image: str = ""
    versions: dict = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # scope -> name -> value
    artifacts: list[Artifact] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> name -> value
    scenario_path: str = ""  # the scenario file that ran (its text is kept: scenario_text())
    scenario_sha256: str = ""
    snapshots: list[dict] = field(default_factory=list)  # SnapshotLink rows, as dicts


def _owner_only(path: Path) -> None:
    """The store holds what runs were given (parameters, paths, metrics): its folder is made
    0700 and the file 0600 from creation, and an existing file others can read is tightened
    (SQLite gives its -wal and -shm files the file's mode); one that is not ours to change is
    reported on stderr."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # SQLite reads an empty file as a new store
    for found in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = found.stat()
        except FileNotFoundError:
            continue
        if not info.st_mode & 0o077:
            continue
        if info.st_uid == os.geteuid():
            os.chmod(found, stat.S_IMODE(info.st_mode) & 0o700)
        else:
            print(f"minikf: warning: {found} can be read by other users (mode "
                  f"{stat.S_IMODE(info.st_mode):o}) and is not yours to change", file=sys.stderr)


class MetadataStore:
    """One SQLite file. Use as a context manager, or call close(). `read_only` opens an existing
    store without creating or changing anything (`minikf ui`)."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        try:
            if read_only:
                self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                          timeout=30)
                self.db.execute("SELECT 1 FROM runs LIMIT 1")
                return
            _owner_only(self.path)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(_SCHEMA)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise MinikfError(f"metadata store {self.path}: {exc}", exit_code=2) from exc

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.db:
            yield self.db

    def save(self, run: RunRecord, scenario_text: str = "") -> None:
        with self._tx() as db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
            db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.run_id, run.scenario, run.platform, run.status, run.message, run.started,
                 run.duration_s, run.results_dir, run.code_version, run.minikf_version,
                 run.image, json.dumps(run.versions, sort_keys=True)))
            db.executemany("INSERT INTO params VALUES (?,?,?,?)", [
                (run.run_id, scope, name, json.dumps(value, sort_keys=True, default=str))
                for scope, values in run.params.items() for name, value in values.items()])
            db.executemany("INSERT INTO artifacts VALUES (?,?,?,?,?,?,?)", [
                (run.run_id, a.step, a.kind, a.name, a.uri, a.sha256, a.size)
                for a in run.artifacts])
            db.executemany("INSERT INTO metrics VALUES (?,?,?,?)", [
                (run.run_id, step, name, float(value))
                for step, values in run.metrics.items() for name, value in values.items()])
            if run.scenario_path:
                db.execute("INSERT INTO sources VALUES (?,?,?,?)",
                           (run.run_id, run.scenario_path, run.scenario_sha256, scenario_text))

    def scenario_text(self, run_id: str) -> str:
        """The scenario file as it was when the run started ('' when not recorded)."""
        row = self.db.execute("SELECT scenario_text FROM sources WHERE run_id = ?",
                              (run_id,)).fetchone()
        return row[0] if row else ""

    def link_snapshot(self, snapshot_id: str, run_id: str, relation: str, created: str,
                      store: str) -> None:
        """A snapshot as a node of a run's lineage: `of` (taken of the run) or `rerun` (the run
        re-ran it)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?,?)",
                       (snapshot_id, run_id, relation, created, store))

    def snapshot_links(self, run_id: str) -> list[dict]:
        rows = self.db.execute("SELECT snapshot_id, relation, created, store FROM snapshots "
                               "WHERE run_id = ? ORDER BY created", (run_id,))
        return [{"snapshot_id": s, "relation": r, "created": c, "store": st} for s, r, c, st in rows]

    def list_runs(self, scenario: str | None = None, limit: int = 20) -> list[RunRecord]:
        sql = "SELECT run_id FROM runs"
        args: tuple = ()
        if scenario:
            sql, args = sql + " WHERE scenario = ?", (scenario,)
        rows = self.db.execute(sql + " ORDER BY started DESC, rowid DESC LIMIT ?", (*args, limit))
        return [self.get(run_id) for (run_id,) in rows.fetchall()]

    def resolve(self, ref: str) -> str:
        """A run id from a unique prefix; a clear error when none or several match."""
        rows = [r[0] for r in self.db.execute(
            "SELECT run_id FROM runs WHERE run_id LIKE ? ORDER BY started", (ref + "%",))]
        if not rows:
            raise MinikfError(f"no run {ref!r} in {self.path} (see `minikf runs list`)", 2)
        if len(rows) > 1 and ref not in rows:
            raise MinikfError(f"run {ref!r} is ambiguous: {', '.join(rows[:5])}", 2)
        return ref if ref in rows else rows[0]

    def runs_with_artifact(self, sha256: str, kind: str | None = None) -> list[str]:
        sql = "SELECT DISTINCT a.run_id FROM artifacts a JOIN runs r USING (run_id) WHERE sha256 = ?"
        args: tuple = (sha256,)
        if kind:
            sql, args = sql + " AND kind = ?", (*args, kind)
        return [r[0] for r in self.db.execute(sql + " ORDER BY r.started DESC", args)]

    def get(self, run_id: str) -> RunRecord:
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise MinikfError(f"no run {run_id!r} in {self.path}", 2)
        (run_id, scenario, platform, status, message, started, duration, results_dir, code,
         minikf_version, image, versions) = row
        run = RunRecord(run_id, scenario, platform, status, started, message or "",
                        duration or 0.0, results_dir or "", code or "", minikf_version or "",
                        image or "", json.loads(versions or "{}"))
        for scope, name, value in self.db.execute(
                "SELECT scope, name, value FROM params WHERE run_id = ? ORDER BY rowid",
                (run_id,)):
            run.params.setdefault(scope, {})[name] = json.loads(value)
        run.artifacts = [Artifact(*r) for r in self.db.execute(
            "SELECT step, kind, name, uri, sha256, size FROM artifacts WHERE run_id = ? "
            "ORDER BY rowid", (run_id,))]
        for step, name, value in self.db.execute(
                "SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY rowid", (run_id,)):
            run.metrics.setdefault(step, {})[name] = value
        source = self.db.execute("SELECT scenario_path, scenario_sha256 FROM sources WHERE run_id = ?",
                                 (run_id,)).fetchone()
        if source:
            run.scenario_path, run.scenario_sha256 = source
        run.snapshots = self.snapshot_links(run_id)
        return run
