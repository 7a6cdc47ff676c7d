"""What is serving on this host now: a small registry of long-lived services (a model server
started by `minikf serve` or by a run's serve step), so that `minikf ui` can list them.

One JSON file per service in $MINIKF_HOME/running/ (pid, its start time, URL, details), written
when the service is up and removed when it stops; a file whose process is gone (or whose pid was
reused) reads as not running. Never a token: only where to find the service.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil

from minikf.runtime import files


def registry_dir() -> Path:
    home = os.environ.get("MINIKF_HOME") or Path.home() / ".minikf"
    return Path(home).expanduser() / "running"


def register(kind: str, pid: int, url: str, **details) -> Path:
    """Note a running service; returns the file to pass to unregister()."""
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = 0.0
    path = folder / f"{kind}-{pid}-{int(time.time() * 1000)}.json"
    files.write_text(path, json.dumps({"kind": kind, "pid": pid, "create_time": created, "url": url,
                                       "since": time.time(), **details}), perms=0o600)
    return path


def unregister(path: Path) -> None:
    Path(path).unlink(missing_ok=True)


def _alive(entry: dict) -> bool:
    try:
        return abs(psutil.Process(int(entry["pid"])).create_time() - float(entry["create_time"])) < 1.0
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def running(kind: str | None = None) -> list[dict]:
    """The registered services still running (oldest first); read-only."""
    folder = registry_dir()
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and (kind is None or entry.get("kind") == kind) and _alive(entry):
            found.append(entry)
    return sorted(found, key=lambda e: e.get("since", 0))
