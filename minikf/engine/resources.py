"""Everything a run starts, tracked so that it can all be stopped and removed at the end."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A free TCP port on 127.0.0.1, chosen by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_process_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the whole group, wait, then SIGKILL what is left; reap the leader."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        if not _group_alive(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            if proc.poll() is not None and not _group_alive(pgid):
                break
            time.sleep(0.05)
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


@dataclass
class Resources:
    """Process groups, temp dirs and extra cleanup callbacks owned by one run."""

    run_id: str = ""  # platforms label what they create with it (docker: minikf.run=<run_id>)
    processes: list[subprocess.Popen] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)
    callbacks: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spawn(self, argv: list[str], log_path: Path, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Start a process in its own process group, output to log_path, tracked for cleanup."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cwd, start_new_session=True,
            )
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
        with self._lock:
            procs = list(self.processes)
        for proc in reversed(procs):
            kill_process_group(proc)

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
