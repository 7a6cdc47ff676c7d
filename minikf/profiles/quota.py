"""Quotas, enforced for real: a slot file per live run, CPU affinity and an address-space
limit on every process launched for the profile, and a check of the workers a run asks for."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from minikf.profiles.store import Profile, private_dir, write_private
from minikf.runtime.errors import MinikfError


class QuotaExceeded(MinikfError):
    """A run or process would go over the profile's quota; the message says which and how."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=3)


def check_workers(profile: Profile, workers: int) -> None:
    """A run may not ask for more training workers than the profile has CPU cores."""
    if workers > profile.quota.cpus:
        raise QuotaExceeded(
            f"quota exceeded for profile {profile.name}: the run asks for {workers} workers "
            f"but the CPU quota is {profile.quota.cpus} (quota.cpus in "
            f"{profile.dir / 'profile.yaml'}); use --param workers={profile.quota.cpus} "
            "or raise the quota")


def _live_slots(slots: Path) -> list[Path]:
    """Slot files whose process is still running; stale ones (a crashed run) are removed."""
    live = []
    for slot in slots.glob("*.slot"):
        try:
            pid, created = slot.read_text().split()
            proc = psutil.Process(int(pid))
            if abs(proc.create_time() - float(created)) < 1.0:
                live.append(slot)
                continue
        except (ValueError, OSError, psutil.Error):
            pass
        slot.unlink(missing_ok=True)
    return live


@contextmanager
def run_slot(profile: Profile, run_id: str) -> Iterator[Path]:
    """Hold one of the profile's `max_runs` slots for the life of a run."""
    slots = private_dir(profile.dir / "slots")
    with open(slots / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            live = _live_slots(slots)
            if len(live) >= profile.quota.max_runs:
                raise QuotaExceeded(
                    f"quota exceeded for profile {profile.name}: {len(live)} run(s) already "
                    f"running, the quota is {profile.quota.max_runs} at a time (quota.max_runs "
                    f"in {profile.dir / 'profile.yaml'}); wait for one to finish")
            slot = slots / f"{run_id}.slot"
            me = psutil.Process()
            write_private(slot, f"{me.pid} {me.create_time()}\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        yield slot
    finally:
        slot.unlink(missing_ok=True)


def limited_argv(profile: Profile, argv: list[str]) -> list[str]:
    """argv run under the profile's CPU and memory quota (see minikf.profiles.limits)."""
    return [sys.executable, "-m", "minikf.profiles.limits",
            "--cpus", str(profile.quota.cpus), "--memory-mb", str(profile.quota.memory_mb),
            "--", *argv]


def allowed_cpus(count: int) -> list[int]:
    """The first `count` cores this process may run on."""
    return sorted(os.sched_getaffinity(0))[:count]
