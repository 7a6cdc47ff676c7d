"""Children die with their parent: what RunResources starts gets SIGKILL when the process that
started it is killed, however short-lived the thread that asked was, and carries the run's marker.
Real processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from minikf.runtime.errors import MinikfError
from minikf.runtime.lifeline import RUN_ID_ENV
from minikf.runtime.processes import RunResources

SLEEP = [sys.executable, "-c", "import time; time.sleep(300)"]


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_process_started_from_a_short_thread_outlives_that_thread(tmp_path):
    """PDEATHSIG is tied to the thread that forks: a step's thread ends with the step, and a
    model server it started must not end with it."""
    resources = RunResources(run_id="r1")
    box = {}
    thread = threading.Thread(target=lambda: box.update(proc=resources.spawn(SLEEP, tmp_path / "x.log")))
    thread.start()
    thread.join()
    try:
        time.sleep(0.5)
        assert box["proc"].poll() is None
    finally:
        assert resources.cleanup() == []
    assert box["proc"].poll() is not None


LIMITED = [sys.executable, "-m", "minikf.profiles.limits", "--cpus", "1", "--memory-mb", "4096",
           "--", *SLEEP]  # a user's quota wrapper execs the command: PDEATHSIG survives exec


@pytest.mark.parametrize("argv", [SLEEP, LIMITED], ids=["plain", "under-a-quota"])
def test_what_a_killed_process_started_dies_with_it(tmp_path, argv):
    """kill -9 of the process that owns the run: its children go too, not on under PID 1."""
    log = str(tmp_path / "c.log")
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, threading, time
        from pathlib import Path
        from minikf.runtime.processes import RunResources
        resources = RunResources(run_id="r2")
        box = {{}}
        start = lambda: box.update(p=resources.spawn({argv!r}, Path({log!r})))
        t = threading.Thread(target=start)
        t.start(); t.join()
        print(box["p"].pid, flush=True)
        time.sleep(300)
    """)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert psutil.Process(child).is_running()
    parent.kill()
    parent.wait()
    assert _gone(child), "the child lives on after its parent was killed"


def test_spawned_processes_carry_the_run_marker(tmp_path):
    resources = RunResources(run_id="marked1")
    try:
        proc = resources.spawn(SLEEP, tmp_path / "m.log", env={"PATH": os.environ["PATH"]})
        assert psutil.Process(proc.pid).environ()[RUN_ID_ENV] == "marked1"
    finally:
        resources.cleanup()


def test_nothing_starts_once_cleanup_began(tmp_path):
    resources = RunResources(run_id="r3")
    resources.cleanup()
    with pytest.raises(MinikfError, match="the run is stopping"):
        resources.spawn(SLEEP, tmp_path / "late.log")
    late = subprocess.Popen(SLEEP, start_new_session=True)
    with pytest.raises(MinikfError, match="the run is stopping"):
        resources.adopt(late)
    assert late.poll() == -signal.SIGTERM  # stopped, not left running
