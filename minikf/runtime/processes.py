"""Everything a run starts, tracked so that it can all be stopped and removed at the end.

Every process starts in a process group of its own, so stopping it stops what it started too;
`RunResources` holds a run's groups, temp dirs and cleanup callbacks, and `cleanup()` removes
them all, reporting (never swallowing) what it could not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil


class ProcessHandle(Protocol):
    """What launching a workload returns, whatever runs it (a subprocess, a process forked warm,
    a container): Popen's poll/wait/returncode/pid. A handle with its own `stop(grace)` (a
    container) is stopped that way; any other is a process group."""

    pid: int | str
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False if it is gone."""
    if not _group_alive(pgid):
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_process_group(proc: subprocess.Popen, grace: float = 3.0, terminated: bool = False) -> None:
    """SIGTERM the whole group (unless `terminated`: sent already), wait, then SIGKILL what is
    left; reap the leader."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        if sig == signal.SIGTERM and terminated:
            if not _group_alive(pgid):
                break
        elif not _signal_group(pgid, sig):
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            if proc.poll() is not None and not _group_alive(pgid):
                break
            time.sleep(0.02)
            proc.poll()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass


def stop_handle(handle, grace: float = 3.0) -> None:
    """Stop what a platform launched: its own stop() (e.g. a container), else its process group."""
    stop = getattr(handle, "stop", None)
    if callable(stop):
        stop(grace)
    else:
        kill_process_group(handle, grace)


def kill_tree(pid: int, grace: float = 5.0) -> None:
    """SIGTERM a process and its descendants, then SIGKILL whatever is left after `grace`: for
    trees that leave their process group (Jupyter kernels start sessions of their own)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=2)


@dataclass
class RunResources:
    """Process groups, temp dirs and extra cleanup callbacks owned by one run."""

    run_id: str = ""  # platforms label what they create with it (docker: minikf.run=<run_id>)
    processes: list[subprocess.Popen] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)
    callbacks: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spawn(self, argv: list[str], log_path: Path, env: dict | None = None,
              cwd: Path | None = None, stdin_pipe: bool = False,
              stdout_pipe: bool = False) -> subprocess.Popen:
        """Start a process in its own process group, output to log_path, tracked for cleanup.
        stdin is /dev/null and stdout the log, or pipes to the caller (proc.stdin, proc.stdout)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log if stdout_pipe else subprocess.STDOUT,
                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                env=env, cwd=cwd, start_new_session=True,
            )
        return self.adopt(proc)

    def adopt(self, proc):
        """Track a process started elsewhere (pid = its process group, poll/wait like Popen)."""
        with self._lock:
            self.processes.append(proc)
        return proc

    def add_temp_dir(self, path: Path) -> Path:
        with self._lock:
            self.temp_dirs.append(path)
        return path

    def on_cleanup(self, callback) -> None:
        with self._lock:
            self.callbacks.append(callback)

    def stop_processes(self) -> None:
        """SIGTERM every process group at once, then wait for each (SIGKILL after the grace);
        a handle with its own stop() (a container) is stopped that way."""
        with self._lock:
            procs = list(reversed(self.processes))
        groups = [p for p in procs if not callable(getattr(p, "stop", None))]
        for proc in groups:
            _signal_group(proc.pid, signal.SIGTERM)
        for proc in procs:
            if proc in groups:
                kill_process_group(proc, terminated=True)
            else:
                stop_handle(proc)

    def cleanup(self) -> list[str]:
        """Stop and remove everything; return problems met (never silently swallowed)."""
        problems: list[str] = []
        with self._lock:
            callbacks, self.callbacks = list(self.callbacks), []
        for callback in reversed(callbacks):
            try:
                callback()
            except Exception as exc:  # report, keep cleaning the rest
                problems.append(f"cleanup callback {callback!r} failed: {exc}")
        self.stop_processes()
        for path in self.temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                problems.append(f"could not remove {path}")
        return problems
