"""Files a user keeps, written so that a crash or a full disk never leaves half of one.

Every write goes to a temp file in the same folder, is flushed and fsync'ed, then renamed over the
target (rename is atomic within a filesystem), and the folder is fsync'ed so the rename survives a
power cut. A failure removes the temp file and raises WriteFailed with one line naming the file
and the reason ("no space left on device"), so an earlier good file is never destroyed.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from minikf.runtime.errors import MinikfError, WriteFailed

PROBE_BYTES = 64 * 1024
"""What `check_writable_dir` writes: more than results.json, junit.xml and report.html need."""


def reason(exc: OSError) -> str:
    """An OSError as a few words: "no space left on device", "read-only file system"."""
    text = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    return text[:1].lower() + text[1:]


def os_error_line(exc: OSError) -> str:
    """An OSError (or shutil.Error, which lists one per file) as one line, file first."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        _, dst, why = exc.args[0][0]  # why: "[Errno 28] No space left on device: 'PATH'"
        why = re.sub(r"^\[Errno \d+\] |: '[^']*'$", "", str(why))
        return f"{dst}: {why[:1].lower()}{why[1:]}"
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{reason(exc)}"


def _temp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: Path | str, mode: str = "w", perms: int = 0o666) -> Iterator[IO]:
    """Open a temp file beside `path` for writing; on a clean exit it replaces `path`.

    `perms` is the new file's mode before the umask (0o600 for a private file)."""
    path = Path(path)
    temp = _temp_for(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, perms)
        with os.fdopen(fd, mode if "b" in mode else mode + "t",
                       **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        _remove(temp)
        raise WriteFailed(f"cannot write {path}: {reason(exc)}") from exc
    except BaseException:
        _remove(temp)
        raise
    _fsync_dir(path.parent)


def write_text(path: Path | str, text: str, perms: int = 0o666) -> Path:
    with atomic_open(path, "w", perms) as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: Path | str, data: bytes, perms: int = 0o666) -> Path:
    with atomic_open(path, "wb", perms) as handle:
        handle.write(data)
    return Path(path)


def copy_tree(src: Path | str, dst: Path | str) -> Path:
    """Copy a folder to `dst` as a whole: into a temp folder beside it, then swapped in; on a
    failure (a full disk) the temp copy is removed and an earlier `dst` is left as it was."""
    src, dst = Path(src), Path(dst)
    temp = _temp_for(dst)
    try:
        for folder, _, names in os.walk(src):
            rel = Path(folder).relative_to(src)
            (temp / rel).mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copy2(Path(folder) / name, temp / rel / name)
        for folder, _, names in os.walk(temp):  # the data on disk before the swap
            for name in names:
                with open(Path(folder) / name, "rb") as handle:
                    os.fsync(handle.fileno())
        old = _temp_for(dst) if dst.exists() else None
        if old:
            os.replace(dst, old)
        os.replace(temp, dst)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        raise WriteFailed(f"cannot copy {src} to {dst}: {reason(exc)}") from exc
    if old:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dst.parent)
    return dst


def check_writable_dir(folder: Path | str, what: str, fix: str) -> Path:
    """Make `folder` (0700 when new) and prove it takes a file: a read-only, unwritable or full
    disk is found before any work is done, as one line naming the folder and `fix`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
        probe = _temp_for(folder / "probe")
        try:
            with open(probe, "wb") as handle:
                handle.write(b"\0" * PROBE_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            _remove(probe)
    except OSError as exc:
        raise MinikfError(f"{what} {folder}: {reason(exc)}; {fix}", exit_code=2) from exc
    return folder


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # reported by the caller's own error; a stray temp file is named ".NAME.*.tmp"
