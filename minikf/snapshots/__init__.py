"""Snapshots (the part Rok played in MiniKF): a run's or a notebook folder's whole state, kept so it
can be restored and re-run later.

A snapshot of a run holds its inputs (the data files its parameters name, by sha256), code (the
scenario file as it ran, the files it names, minikf's version and git commit), parameters,
environment (package versions, the platform's image), model and results; a snapshot of a
notebook folder holds the folder. Objects are content-addressed and deduplicated
(minikf/snapshots/store.py); each owner has a store: a profile's in its 0700 dir, the OS
user's in $MINIKF_HOME/snapshots. A snapshot is a node in the lineage store (minikf/metadata).

    capture: create a snapshot of a run (results dir or run id) or of a notebook folder
    restore: write a snapshot back to a folder; plan and compare a re-run from it
"""

from __future__ import annotations

from pathlib import Path

from minikf.profiles.store import load_profile, minikf_home
from minikf.snapshots.store import SnapshotCorrupted, SnapshotStore


def store_for(user: str | None = None, home: Path | str | None = None) -> SnapshotStore:
    """A profile's store (in its private dir), or the OS user's ($MINIKF_HOME/snapshots)."""
    if user:
        return SnapshotStore(load_profile(user, home).snapshots_dir)
    return SnapshotStore(minikf_home(home) / "snapshots")


def owner_of(path: Path, home: Path | str | None = None) -> str | None:
    """The profile whose dir holds `path` (a run of `minikf profiles run`), else None."""
    profiles = (minikf_home(home) / "profiles").resolve()
    try:
        relative = Path(path).resolve().relative_to(profiles)
    except ValueError:
        return None
    return relative.parts[0] if relative.parts else None


__all__ = ["SnapshotCorrupted", "SnapshotStore", "owner_of", "store_for"]
