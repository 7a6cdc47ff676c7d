"""The snapshot store: content-addressed, deduplicated objects and one manifest per snapshot.

    <store>/objects/<sha256[:2]>/<sha256[2:]>   a file's bytes, named by their sha256 (0600)
    <store>/manifests/<id>.json                  what a snapshot holds (0600)

A file stored twice (the same data in two snapshots, or twice in one) is kept once. Every
folder is 0700 and every file 0600: a store belongs to one profile (or the OS user), like the
profile's runs. Objects are checked against their name whenever they are read back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from minikf.runtime.errors import MinikfError
from minikf.runtime.files import write_bytes, write_text

_ID = re.compile(r"^snap-[0-9a-f]{12}$")
_CHUNK = 1 << 20


class SnapshotCorrupted(MinikfError):
    """An object whose bytes no longer match its sha256: names the object and both hashes."""

    def __init__(self, snapshot: str, path: str, obj: Path, expected: str, found: str) -> None:
        super().__init__(f"snapshot {snapshot}: object {obj} ({path}) is corrupted: expected "
                         f"sha256 {expected}, found {found}", exit_code=3)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


@dataclass
class Stored:
    """What put() did: the object's sha256, its size, and whether it was new to the store."""

    sha256: str
    size: int
    new: bool


class SnapshotStore:
    """One owner's store of snapshots, at `root` (created 0700 on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def _ensure(self) -> None:
        """The store's folders, 0700 from the top (the parents it makes too)."""
        missing, folder = [], self.root
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir(mode=0o700, exist_ok=True)
        for path in (self.root, self.objects, self.manifests):
            _private_dir(path)

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256[2:]

    def put(self, path: Path) -> Stored:
        """Copy a file in, hashing it on the way; an object already there is not written again."""
        self._ensure()
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=self.objects)
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            sha = digest.hexdigest()
            target = self.object_path(sha)
            if target.exists() and target.stat().st_size == size:
                return Stored(sha, size, False)  # `show --verify` re-hashes what is kept
            _private_dir(target.parent)
            os.replace(tmp, target)  # mkstemp made it 0600
            return Stored(sha, size, True)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> Stored:
        """Store bytes held in memory (a scenario's text, say)."""
        self._ensure()
        sha = hashlib.sha256(data).hexdigest()
        target = self.object_path(sha)
        if target.exists() and target.stat().st_size == len(data):
            return Stored(sha, len(data), False)
        _private_dir(target.parent)
        write_bytes(target, data, perms=0o600)
        return Stored(sha, len(data), True)

    def read_verified(self, snapshot: str, entry: dict, dest: Path) -> None:
        """Copy object `entry['sha256']` to `dest`, checking its bytes on the way."""
        obj = self.object_path(entry["sha256"])
        if not obj.is_file():
            raise MinikfError(f"snapshot {snapshot}: object {obj} ({entry['path']}) is missing from "
                              "the store", exit_code=3)
        digest = hashlib.sha256()
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with open(obj, "rb") as src, os.fdopen(fd, "wb") as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(chunk)
                    dst.write(chunk)
            if digest.hexdigest() != entry["sha256"]:
                raise SnapshotCorrupted(snapshot, entry["path"], obj, entry["sha256"], digest.hexdigest())
            os.chmod(tmp, entry.get("mode", 0o600) & 0o700)  # never wider than the owner's
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def verify(self, manifest: dict) -> int:
        """Re-hash every object a snapshot uses; the number checked, or SnapshotCorrupted."""
        seen = set()
        for entry in manifest["files"]:
            if entry["sha256"] in seen:
                continue
            obj = self.object_path(entry["sha256"])
            if not obj.is_file():
                raise MinikfError(f"snapshot {manifest['id']}: object {obj} ({entry['path']}) is "
                                  "missing from the store", exit_code=3)
            found = sha256_of(obj)
            if found != entry["sha256"]:
                raise SnapshotCorrupted(manifest["id"], entry["path"], obj, entry["sha256"], found)
            seen.add(entry["sha256"])
        return len(seen)

    def save_manifest(self, manifest: dict) -> str:
        """Store a manifest under a new id (the hash of its content); returns the id."""
        body = json.dumps(manifest, sort_keys=True, indent=1)
        snap_id = "snap-" + hashlib.sha256(body.encode()).hexdigest()[:12]
        self._ensure()
        write_text(self.manifests / f"{snap_id}.json",
                   json.dumps({**manifest, "id": snap_id}, sort_keys=True, indent=1), perms=0o600)
        return snap_id

    def resolve(self, ref: str) -> str:
        """A snapshot id from a unique prefix (with or without `snap-`)."""
        ref = ref if ref.startswith("snap-") else f"snap-{ref}"
        found = sorted(p.stem for p in self.manifests.glob(f"{ref}*.json")) \
            if self.manifests.is_dir() and re.fullmatch(r"snap-[0-9a-f]{1,12}", ref) else []
        if not found:
            raise MinikfError(f"no snapshot {ref!r} in {self.root} (see `minikf snapshot list`)", 2)
        if len(found) > 1 and ref not in found:
            raise MinikfError(f"snapshot {ref!r} is ambiguous: {', '.join(found[:5])}", 2)
        return ref if ref in found else found[0]

    def load(self, ref: str) -> dict:
        snap_id = self.resolve(ref)
        path = self.manifests / f"{snap_id}.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MinikfError(f"snapshot {snap_id}: manifest {path} is unreadable: {exc}", 3) from None
        if manifest.get("id") != snap_id or not isinstance(manifest.get("files"), list):
            raise MinikfError(f"snapshot {snap_id}: manifest {path} is not a snapshot manifest", 3)
        return manifest

    def list(self) -> list[dict]:
        """Every manifest, newest first (unreadable ones are skipped)."""
        found = []
        for path in self.manifests.glob("snap-*.json") if self.manifests.is_dir() else []:
            if not _ID.match(path.stem):
                continue
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return sorted(found, key=lambda m: m.get("created", ""), reverse=True)

    def usage(self) -> tuple[int, int]:
        """(objects, bytes) the store holds."""
        files = [p for p in self.objects.rglob("*") if p.is_file()] if self.objects.is_dir() else []
        return len(files), sum(p.stat().st_size for p in files)
