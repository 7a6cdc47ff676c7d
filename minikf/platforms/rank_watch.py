"""The launcher's side of a data-parallel job's end: name a rank that is stuck after another finished.

The ranks of a job finish within moments of each other (rank 0 saves the model, then waits for
the others' word; see minikf/workload/train_worker.py). So once one rank has exited 0, a rank
whose log stops growing for `stall_after_peer_s()` seconds is stuck: the job is ended then,
with a message naming that rank and its last log line (the worker writes a progress line before
each stage and each wait), instead of waiting for the step's whole timeout.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

TAIL_BYTES = 4096


def stall_after_peer_s() -> float:
    """MINIKF_STALL_AFTER_PEER_S, default 60: how long a rank may show no progress once another
    rank of its job has finished."""
    value = os.environ.get("MINIKF_STALL_AFTER_PEER_S", "")
    return float(value) if value.strip() else 60.0


def last_line(log: Path, limit: int = 300) -> str:
    """The last non-empty line of a log ('' if none), at most `limit` characters."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


def _size(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return -1


@dataclass
class RankWatch:
    """Call check() with each rank's exit code (None: running) as the job goes; it returns the
    message to end the job with once a rank is stuck, else None."""

    logs: dict[int, Path]
    grace_s: float = field(default_factory=stall_after_peer_s)
    _finished: int | None = None  # the first rank to exit 0
    _seen: dict[int, tuple[int, float]] = field(default_factory=dict)  # rank: (log size, since)

    def check(self, codes: dict[int, int | None]) -> str | None:
        now = time.monotonic()
        if self._finished is None:
            done = [rank for rank, code in codes.items() if code == 0]
            if not done:
                return None
            self._finished = done[0]
        for rank, code in codes.items():
            if code is not None:
                continue
            size = _size(self.logs[rank])
            if self._seen.get(rank, (None,))[0] != size:
                self._seen[rank] = (size, now)
            if now - self._seen[rank][1] >= self.grace_s:
                line = last_line(self.logs[rank]) or "(nothing logged)"
                return (f"worker {rank} made no progress for {self.grace_s:g} s after worker "
                        f"{self._finished} had finished; its last line: {line} (see {self.logs[rank]})")
        return None
