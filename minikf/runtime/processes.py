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

from minikf.runtime.errors import MinikfError
from minikf.runtime.lifeline import on_spawner, popen, with_run_id
from minikf.runtime.liverun import LiveRun


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
    """Process groups, temp dirs and extra cleanup callbacks owned by one run; with a `record`
    (the engine's runs have one), each is also written down there as it is made, so that a
    reaper or `minikf clean` can stop it if this process is killed."""

    run_id: str = ""  # platforms label what they create with it (docker: minikf.run=<run_id>)
    processes: list[subprocess.Popen] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)
    callbacks: list = field(default_factory=list)
    record: LiveRun | None = None
    closed: bool = False  # cleanup has begun: nothing new may start
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spawn(self, argv: list[str], log_path: Path, env: dict | None = None,
              cwd: Path | None = None, stdin_pipe: bool = False, stdout_pipe: bool = False,
              death_signal: int = signal.SIGKILL) -> subprocess.Popen:
        """Start a process in its own process group, output to log_path, tracked for cleanup.
        stdin is /dev/null and stdout the log, or pipes to the caller (proc.stdin, proc.stdout).
        It gets `death_signal` if this process dies, and carries the run's marker (lifeline.py)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)

        def start() -> subprocess.Popen:
            with self._lock:
                self._refuse_when_closed(argv)
                with open(log_path, "ab") as log:
                    proc = popen(
                        argv, stdout=subprocess.PIPE if stdout_pipe else log,
                        stderr=log if stdout_pipe else subprocess.STDOUT,
                        stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                        env=with_run_id(env, self.run_id), cwd=cwd, start_new_session=True,
                        death_signal=death_signal,
                    )
                self.processes.append(proc)
                self._note_process(proc.pid, argv)
            return proc

        return on_spawner(start)

    def adopt(self, proc):
        """Track a process started elsewhere (pid = its process group, poll/wait like Popen).
        One adopted after cleanup began is stopped at once and refused."""
        with self._lock:
            if not self.closed:
                self.processes.append(proc)
                if isinstance(proc.pid, int):
                    self._note_process(proc.pid, list(getattr(proc, "args", []) or []))
                return proc
        stop_handle(proc)
        self._refuse_when_closed(list(getattr(proc, "args", []) or []))
        return proc

    def _refuse_when_closed(self, argv: list[str]) -> None:
        if self.closed:
            raise MinikfError(f"not starting {' '.join(map(str, argv[:3]))}: the run is stopping")

    def _note_process(self, pid: int, argv: list[str]) -> None:
        if self.record is not None:
            self.record.add_process(pid, [str(a) for a in argv])
            self.record.save()

    def add_temp_dir(self, path: Path) -> Path:
        with self._lock:
            self.temp_dirs.append(path)
            if self.record is not None:
                self.record.workdirs.append(str(path))
                self.record.save()
        return path

    def keep_temp_dir(self, path: Path) -> None:
        """Leave `path` in place at cleanup (and when a reaper cleans up after a killed run)."""
        with self._lock:
            self.temp_dirs.remove(path)
            if self.record is not None:
                self.record.workdirs.remove(str(path))
                self.record.kept.append(str(path))
                self.record.save()

    def note_port(self, port: int) -> None:
        """A port the run's processes listen on, for the record."""
        self.update_record(lambda record: record.ports.append(port))

    def note_leftovers(self, platform: str, details: dict) -> None:
        """What a platform creates outside this host's processes (containers, cluster objects),
        for the reaper and `minikf clean` to remove if the run is killed: handed to that
        platform's `reap(details)`."""
        self.update_record(lambda record: record.platform_leftovers.__setitem__(platform, details))

    def update_record(self, change) -> None:
        with self._lock:
            if self.record is not None:
                change(self.record)
                self.record.save()

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
            self.closed = True
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
