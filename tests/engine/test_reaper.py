"""What a killed run leaves is found through its live record and removed: by the run's reaper at
once (kill -9 of the CLI), or by `minikf clean` later; a run whose minikf process still runs is
left alone, and at a clean end the reaper does nothing. The real CLI and real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from minikf.engine.runner import run_scenario
from minikf.results import RunResult, Status, StepResult
from minikf.runtime.lifeline import RUN_ID_ENV
from minikf.runtime.liverun import LiveRun, live_dir
from minikf.scenario import load_scenario
from tests.engine.test_runner import SLEEPER, alive, listening

SLEEP = [sys.executable, "-c", "import time; time.sleep(300)"]


def _wait_until(check, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_kill_9_of_the_cli_the_reaper_stops_and_removes_everything(write_scenario, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    path = write_scenario(f"""name: killed
steps:
  - name: web
    kind: service
    args:
      argv: [python, -m, http.server, --bind, 127.0.0.1, "${{ports.web}}"]
      port: ${{ports.web}}
  - name: hang
    kind: command
    args: {{argv: [python, -c, "{SLEEPER}", "{pidfile}"]}}
""")
    home, out = tmp_path / "home", tmp_path / "r"
    env = {**os.environ, "MINIKF_HOME": str(home)}
    cli = subprocess.Popen([sys.executable, "-m", "minikf.cli", "run", str(path), "--results",
                            str(out)], env=env, stderr=subprocess.PIPE, text=True)
    assert _wait_until(pidfile.exists, 60), cli.stderr.read() if cli.poll() is not None else ""
    record = LiveRun.load(next((home / "runs" / "live").glob("*.json")))
    port, grandchild = record.ports[0], int(pidfile.read_text())
    assert listening(port) and alive(grandchild) and record.workdirs
    cli.kill()
    _, err = cli.communicate()
    assert "Traceback" not in err
    # the grandchild shares the command's group but not its PDEATHSIG: the reaper finds it
    assert _wait_until(lambda: not alive(grandchild)), "the grandchild lives on"
    assert not listening(port)
    assert _wait_until(lambda: not Path(record.workdirs[0]).exists())
    assert _wait_until(lambda: not record.path.exists())
    result = json.loads((out / "results.json").read_text())
    assert result["status"] == "interrupted" and result["run_id"] == record.run_id
    assert [(s["name"], s["status"]) for s in result["steps"]] == [
        ("web", "passed"), ("hang", "interrupted")]
    assert f"pid {cli.pid}" in result["steps"][1]["message"]
    log = (home / "runs" / "reaped.log").read_text()
    assert f"run {record.run_id}: removed work dir {record.workdirs[0]}" in log
    assert f"run {record.run_id}: marked the run interrupted in {out / 'results.json'}" in log


def _stale_record(tmp_path: Path, home: Path) -> tuple[LiveRun, list[subprocess.Popen], Path]:
    """A record as a run killed during its `train` step leaves it, its reaper killed too."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(dead.pid).create_time()
    dead.wait()
    recorded = subprocess.Popen(SLEEP, start_new_session=True)
    marked = subprocess.Popen(SLEEP, start_new_session=True,
                              env={**os.environ, RUN_ID_ENV: "stale1"})
    workdir = tmp_path / "minikf-stale1-x"
    (workdir / "warm").mkdir(parents=True)
    run = RunResult("stale1", "journey", "local", started="2026-01-01T00:00:00+00:00",
                    steps=[StepResult("download", "download", Status.PASSED)])
    record = LiveRun("stale1", pid=dead.pid, pid_started=started, workdirs=[str(workdir)],
                     progress={"results_dir": str(tmp_path / "results"), "run": asdict(run),
                               "current": "train", "pending": [
                                   ["download", "download"], ["train", "train"],
                                   ["serve", "serve"]]})
    record.add_process(recorded.pid, SLEEP)
    record.path = live_dir(home) / "stale1.json"
    record.save()
    return record, [recorded, marked], workdir


def test_minikf_clean_removes_what_a_dead_run_left_and_leaves_a_live_one(tmp_path):
    home = tmp_path / "home"
    record, procs, workdir = _stale_record(tmp_path, home)
    mine = subprocess.Popen(SLEEP, env={**os.environ, RUN_ID_ENV: "live1"})
    live = LiveRun.create("live1", home=home)  # owned by this process, which runs
    live.add_process(mine.pid, SLEEP)
    live.save()
    try:
        proc = subprocess.run([sys.executable, "-m", "minikf.cli", "clean"], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "MINIKF_HOME": str(home)})
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stdout.splitlines() if "stale1" in line or "live1" in line]
        assert sorted(lines) == sorted([
            f"run live1: still running (minikf pid {os.getpid()}), left alone",
            *(f"run stale1: stopped process {p.pid} ({' '.join(SLEEP)})" for p in procs),
            f"run stale1: marked the run interrupted in {tmp_path / 'results' / 'results.json'}",
            f"run stale1: removed work dir {workdir}",
        ])
        assert all(p.wait(5) is not None for p in procs) and not workdir.exists()
        assert not record.path.exists() and live.path.exists() and mine.poll() is None
        result = json.loads((tmp_path / "results" / "results.json").read_text())
        assert result["status"] == "interrupted"
        assert [(s["name"], s["status"], s["message"][:12]) for s in result["steps"]] == [
            ("download", "passed", ""), ("train", "interrupted", "interrupted:"),
            ("serve", "skipped", "interrupted")]
    finally:
        for p in [*procs, mine]:
            p.kill()
            p.wait()


def test_at_a_clean_end_the_reaper_does_nothing(write_scenario, local, tmp_path):
    path = write_scenario("""name: clean-end
steps:
  - name: one
    kind: command
    args: {argv: [python, -c, "print(1)"]}
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    home = Path(os.environ["MINIKF_HOME"])
    assert not list(live_dir(home).glob("*.json"))
    reapers = [p for p in psutil.Process().children() if "minikf.engine.reaper" in " ".join(
        p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE]
    assert reapers == []
    log = home / "runs" / "reaped.log"
    assert not log.exists() or result.run_id not in log.read_text()
