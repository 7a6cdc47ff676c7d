"""The process job's verdict when a worker fails: the cause, not its echo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from minikf.platforms.jobs import watch_workers
from minikf.runtime.errors import StepFailed

ECHO = "import sys; print('minikf: rank 0: lost my peer'); sys.exit(3)"
CAUSE = ("import os, signal, time; print('minikf: rank 1: epoch 1/3', flush=True); time.sleep(0.4); "
         "os.kill(os.getpid(), signal.SIGKILL)")


def test_a_worker_killed_by_a_signal_is_named_before_the_one_that_lost_it(tmp_path):
    """Real processes: rank 0 exits with code 3 first (what gloo does when its peer goes), rank 1
    is killed a moment later; the step must name rank 1 and the signal."""
    procs = []
    for rank, code in ((0, ECHO), (1, CAUSE)):
        log = tmp_path / f"train-worker-{rank}.log"
        with open(log, "wb") as out:
            procs.append((rank, log, subprocess.Popen([sys.executable, "-c", code], stdout=out)))
    with pytest.raises(StepFailed) as failed:
        watch_workers(procs)
    assert failed.value.message.startswith("worker 1 exited with signal SIGKILL: minikf: rank 1: epoch 1/3")
    assert all(proc.poll() is not None for _, _, proc in procs)


def test_a_lone_failure_names_its_code_and_last_line(tmp_path):
    log = tmp_path / "w.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", ECHO], stdout=out)
    with pytest.raises(StepFailed, match=r"^worker 0 exited with code 3: minikf: rank 0: lost my peer"):
        watch_workers([(0, log, proc)])


def test_a_code_of_its_own_is_named_before_a_lost_peer_echo(tmp_path):
    """Real processes: rank 0 exits first with gloo's lost-peer code (4), rank 1 with a code of its
    own (7) a moment later: rank 1 is the cause, whatever the ranks' order."""
    lost = "import sys; print('minikf: rank 0: lost another rank'); sys.exit(4)"
    own = "import sys, time; time.sleep(0.3); print('minikf: rank 1: bad data'); sys.exit(7)"
    procs = []
    for rank, code in ((0, lost), (1, own)):
        log = tmp_path / f"train-worker-{rank}.log"
        with open(log, "wb") as out:
            procs.append((rank, log, subprocess.Popen([sys.executable, "-c", code], stdout=out)))
    with pytest.raises(StepFailed, match=r"^worker 1 exited with code 7: minikf: rank 1: bad data"):
        watch_workers(procs)
