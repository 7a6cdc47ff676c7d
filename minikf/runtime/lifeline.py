"""Children that die with their parent: whatever kills minikf (the OOM killer, a CI timeout,
kill -9) must not leave what it started running under PID 1.

Two parts, both Linux's:
- PR_SET_PDEATHSIG (prctl): the kernel sends the child SIGKILL when its parent goes. It is set in
  the child between fork and exec (and survives exec), by `popen` here and by a warm parent's
  forks (`die_with_parent`). The kernel ties it to the *thread* that forked, not the process: a
  step's thread ends when the step does, and would take a model server that must outlive the
  step with it. So `popen` starts every process from one thread that lives as long as the
  process does.
- a marker in the environment, MINIKF_RUN_ID=<run id>, that every descendant inherits, also
  the ones PDEATHSIG cannot reach (a process group's other members, setsid'd grandchildren such
  as Jupyter kernels): the run's reaper and `minikf clean` find those by it.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any

RUN_ID_ENV = "MINIKF_RUN_ID"
PR_SET_PDEATHSIG = 1

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _prctl.restype = ctypes.c_int
except (AttributeError, OSError):  # not Linux: the run's reaper is all there is
    _prctl = None


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """In a child: ask for `sig` when the thread that forked it goes; if the parent (pid
    `parent`) is already gone, go now. Safe between fork and exec (no allocation, no locks)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


class _Spawner:
    """The one thread that starts processes, so that their PDEATHSIG fires only when this
    process ends; a call from that thread itself runs directly."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _loop(self) -> None:
        while True:
            func, box, done = self._jobs.get()
            try:
                box["value"] = func()
            except BaseException as exc:  # handed back to the calling thread
                box["error"] = exc
            done.set()

    def call(self, func: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="minikf-spawner", daemon=True)
                self._thread.start()
        if threading.current_thread() is self._thread:
            return func()
        box: dict[str, Any] = {}
        done = threading.Event()
        self._jobs.put((func, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def forget(self) -> None:
        """In a forked child: the thread is not there any more."""
        self._thread, self._lock, self._jobs = None, threading.Lock(), queue.SimpleQueue()


_SPAWNER = _Spawner()
os.register_at_fork(after_in_child=_SPAWNER.forget)


def on_spawner(func: Callable[[], Any]) -> Any:
    """Run `func` (which starts processes, and records them) on the spawning thread."""
    return _SPAWNER.call(func)


def popen(argv: list[str], death_signal: int = signal.SIGKILL, **kwargs: Any) -> subprocess.Popen:
    """subprocess.Popen(argv, **kwargs) whose process gets `death_signal` when this one ends
    (SIGTERM for one that must undo something elsewhere first, e.g. a run on a cluster). Call it
    through `on_spawner` (as RunResources.spawn does) so it is not tied to a shorter thread."""
    parent = os.getpid()
    return subprocess.Popen(argv, preexec_fn=lambda: die_with_parent(parent, death_signal),
                            **kwargs)


def with_run_id(env: dict[str, str] | None, run_id: str) -> dict[str, str]:
    """`env` (default: this process's) with the run's marker, which descendants inherit."""
    merged = dict(os.environ if env is None else env)
    if run_id:
        merged[RUN_ID_ENV] = run_id
    return merged
