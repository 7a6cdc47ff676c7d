"""Real small filesystems for tests: a tmpfs of a given size (to fill), or mounted read-only.

Mounting needs root (CI runs as root); elsewhere the test is skipped with that reason.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted_tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "2m") at `where`, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (a real full or read-only filesystem)")
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "minikf-test", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> None:
    """Write into `folder` until its filesystem has not one block left."""
    for name, block in (("filler", 1 << 16), ("filler-tail", 512)):
        try:
            with open(folder / name, "wb") as out:
                while True:
                    out.write(b"\0" * block)
                    out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
