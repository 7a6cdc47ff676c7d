"""Warm starts on the local platform: a process forked from a warm parent behaves like
`python -m MODULE ARGS` started cold (arguments, environment, log, exit code, process group,
command line), a parent that cannot import leaves the launch to a cold start, and nothing is
left running after the run's cleanup. Real processes throughout."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from minikf.engine.runner import _prewarm
from minikf.platforms.base import Platform
from minikf.platforms.local import LocalPlatform
from minikf.platforms.warm import WARM_NOTE, Forked
from minikf.runtime.processes import RunResources
from minikf.scenario import load_scenario

DEMO = '''
import json, os, sys, time
print("imported by the warm parent", file=sys.stderr)

def warm_up():
    print("warm_up ran", file=sys.stderr)

if __name__ == "__main__":
    if sys.argv[1:] == ["sleep"]:
        time.sleep(60)
    print(json.dumps({"argv": sys.argv[1:], "demo": os.environ.get("DEMO"),
                      "own_group": os.getpgid(0) == os.getpid()}))
    sys.exit(int(os.environ.get("DEMO_EXIT", "0")))
'''


@pytest.fixture
def demo(tmp_path, monkeypatch) -> str:
    (tmp_path / "pkgs").mkdir()
    (tmp_path / "pkgs" / "warmdemo.py").write_text(DEMO)
    (tmp_path / "pkgs" / "badwarm.py").write_text(
        DEMO.replace('print("warm_up ran", file=sys.stderr)', 'raise RuntimeError("no GPU here")'))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "pkgs"))  # the warm parent's environment
    return "warmdemo"


def _argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _report(log: Path) -> dict:
    return json.loads(next(line for line in log.read_text().splitlines() if line.startswith("{")))


def test_a_forked_process_is_the_module_run_as_main(demo, tmp_path):
    platform, resources = LocalPlatform(), RunResources()
    try:
        platform.prewarm(demo, resources, tmp_path / "warm")
        ok = platform.launch(_argv(demo, "a", "b c"), {"DEMO": "x"}, tmp_path / "ok.log", resources)
        bad = platform.launch(_argv(demo), {"DEMO_EXIT": "3"}, tmp_path / "bad.log", resources)
        assert isinstance(ok, Forked) and isinstance(bad, Forked) and ok.pid != bad.pid
        assert ok.wait(30) == 0 and bad.wait(30) == 3
    finally:
        problems = resources.cleanup()
    assert problems == []
    log = (tmp_path / "ok.log").read_text()
    # the parent's own output (import warnings) comes first, then the note, then the run
    assert log.index("imported by the warm parent") < log.index("warm_up ran") < log.index(WARM_NOTE)
    assert _report(tmp_path / "ok.log") == {"argv": ["a", "b c"], "demo": "x", "own_group": True}
    assert _report(tmp_path / "bad.log")["demo"] is None  # one launch's env is not the next's


def test_a_forked_process_shows_its_own_command_and_is_stopped_by_cleanup(demo, tmp_path):
    platform, resources = LocalPlatform(), RunResources()
    platform.prewarm(demo, resources, tmp_path / "warm")
    parent_pid = resources.processes[0].pid
    proc = platform.launch(_argv(demo, "sleep"), {}, tmp_path / "s.log", resources)
    try:
        def command() -> str:
            return " ".join(psutil.Process(proc.pid).cmdline()).strip()

        deadline = time.monotonic() + 10
        while not command().endswith("sleep") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert command() == f"{sys.executable} -m {demo} sleep"
        assert proc.poll() is None
    finally:
        assert resources.cleanup() == []
    assert proc.returncode is not None and proc.returncode < 0  # stopped by a signal
    assert not psutil.pid_exists(proc.pid) and not psutil.pid_exists(parent_pid)


def test_a_warm_parent_killed_takes_its_children_along(demo, tmp_path):
    """kill -9 of a warm parent: what it forked goes too (PDEATHSIG), and the handle says why
    its exit code is unknown instead of waiting for an orphan to finish."""
    platform, resources = LocalPlatform(), RunResources()
    platform.prewarm(demo, resources, tmp_path / "warm")
    parent = resources.processes[0]
    proc = platform.launch(_argv(demo, "sleep"), {}, tmp_path / "s.log", resources)
    try:
        assert proc.poll() is None
        parent.kill()
        assert proc.wait(timeout=10) == 255
        assert proc.lost == f"its warm parent (pid {parent.pid}, signal SIGKILL) died and took it along"
        try:  # gone, or a zombie its new parent has yet to reap
            assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            pass
    finally:
        assert resources.cleanup() == []


def test_a_parent_that_fails_to_import_leaves_the_launch_to_a_cold_start(tmp_path, demo):
    platform, resources = LocalPlatform(), RunResources()
    try:
        platform.prewarm("badwarm", resources, tmp_path / "warm")
        proc = platform.launch(_argv("badwarm", "cold"), {"DEMO": "y"}, tmp_path / "c.log",
                               resources)
        assert isinstance(proc, subprocess.Popen)  # started cold, and runs as ever
        assert proc.wait(30) == 0
    finally:
        assert resources.cleanup() == []
    assert _report(tmp_path / "c.log") == {"argv": ["cold"], "demo": "y", "own_group": True}
    assert WARM_NOTE not in (tmp_path / "c.log").read_text()
    assert "RuntimeError: no GPU here" in (tmp_path / "warm" / "badwarm.log").read_text()


def test_without_warm_start_every_launch_is_cold(tmp_path, demo):
    platform, resources = LocalPlatform(warm_start=False), RunResources()
    try:
        platform.prewarm(demo, resources, tmp_path / "warm")
        assert resources.processes == []
        proc = platform.launch(_argv(demo), {}, tmp_path / "c.log", resources)
        assert isinstance(proc, subprocess.Popen) and proc.wait(30) == 0
    finally:
        resources.cleanup()


SCENARIO = """name: warm
steps:
  - {name: d, kind: download, args: {dest: x, mirrors: [y]}}
  - {name: t, kind: train, args: {data_dir: x}}
  - {name: t2, kind: tune, args: {data_dir: x, spec: {}}}
  - {name: s, kind: serve, args: {model_dir: x, port: 1, token: t}}
"""


class Recording(Platform):
    """A platform that only records what the engine asks it to start ahead."""

    name = "recording"

    def __init__(self) -> None:
        self.prewarmed: list[str] = []

    def prewarm(self, module, resources, scratch) -> None:
        self.prewarmed.append(module)


def test_the_engine_starts_ahead_what_the_steps_run_once_each(write_scenario, tmp_path):
    scenario = load_scenario(write_scenario(SCENARIO))
    platform = Recording()
    _prewarm(scenario, {"platform": platform, "resources": RunResources(), "workdir": tmp_path})
    assert platform.prewarmed == ["minikf.workload.train_worker", "minikf.workload.server"]


def test_the_base_platform_prewarms_nothing(write_scenario, tmp_path):
    """The contract's default: a platform that cannot import ahead (docker, kubernetes) is asked
    and does nothing, so no warm parent is started."""
    resources = RunResources()
    _prewarm(load_scenario(write_scenario(SCENARIO)),
             {"platform": Platform(), "resources": resources, "workdir": tmp_path})
    assert resources.processes == [] and not (tmp_path / "warm").exists()


def test_once_the_run_is_stopping_a_launch_starts_nothing(tmp_path, demo):
    """A step thread that outlives its run (timeout, Ctrl-C) must not start a process after the
    cleanup: with the warm parent gone and the pool released it gets an error, not a cold start."""
    from minikf.platforms.warm import WarmPool
    from minikf.runtime.errors import MinikfError

    resources = RunResources()
    pool = WarmPool(tmp_path / "warm")
    try:
        pool.start("badwarm", resources)  # its import fails: the parent goes away
        resources.processes[0].wait(30)
        pool.released = True  # what the run's cleanup does first
        with pytest.raises(MinikfError, match="the run is stopping"):
            pool.take(_argv("badwarm"), {}, tmp_path / "late.log", resources)
        assert len(resources.processes) == 1 and not (tmp_path / "late.log").exists()
    finally:
        resources.cleanup()
