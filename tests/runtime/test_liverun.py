"""The live-run record: written atomically as a run goes, read back, and what `reap_processes`
and `remove_workdirs` take from it: only the run's own processes (same pid *and* start time, or
the run's marker in their environment), the run's work dirs and not a kept one. Real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from minikf.runtime.errors import MinikfError
from minikf.runtime.lifeline import RUN_ID_ENV
from minikf.runtime.liverun import (
    LiveRun,
    live_runs,
    reap_processes,
    remove_workdirs,
    run_processes,
)
from minikf.runtime.processes import RunResources
from minikf.runtime.sockets import listening_sockets

SLEEP = [sys.executable, "-c", "import time; time.sleep(300)"]


def _sleeper(env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(SLEEP, env={**os.environ, **(env or {})}, start_new_session=True)


def test_the_record_follows_the_run_and_reads_back(tmp_path):
    record = LiveRun.create("abc123", home=tmp_path, scenario="s", platform="local")
    resources = RunResources(run_id="abc123", record=record)
    try:
        proc = resources.spawn(SLEEP, tmp_path / "x.log")
        resources.add_temp_dir(tmp_path / "work")
        resources.note_port(4242)
        back = LiveRun.load(tmp_path / "runs" / "live" / "abc123.json")
        assert back.pid == os.getpid() and back.owner_alive()
        assert [p["pid"] for p in back.processes] == [proc.pid]
        assert back.workdirs == [str(tmp_path / "work")] and back.ports == [4242]
        assert list(back.path.parent.iterdir()) == [back.path]  # no temp file left beside it
        assert oct(back.path.parent.stat().st_mode & 0o777) == "0o700"
    finally:
        resources.cleanup()
    record.remove()
    assert live_runs(tmp_path) == ([], [])


def test_an_unreadable_record_is_one_line(tmp_path):
    folder = tmp_path / "runs" / "live"
    folder.mkdir(parents=True)
    (folder / "bad.json").write_text("{not json")
    records, problems = live_runs(tmp_path)
    assert records == [] and len(problems) == 1
    assert problems[0].startswith(f"{folder / 'bad.json'}: unreadable live-run record")


def test_reap_takes_the_runs_processes_and_no_other(tmp_path):
    recorded, marked, stranger = _sleeper(), _sleeper({RUN_ID_ENV: "run1"}), _sleeper()
    try:
        record = LiveRun("run1", pid=1, pid_started=0.0)
        record.add_process(recorded.pid, SLEEP)
        # the same pid with another start time: a pid the system gave to someone else since
        record.processes.append({"pid": stranger.pid, "started": time.time() - 1000, "argv": "x"})
        assert {p.pid for p in run_processes(record)} == {recorded.pid, marked.pid}
        lines = reap_processes(record)
        assert sorted(lines) == sorted(f"stopped process {p.pid} ({' '.join(SLEEP)})"
                                       for p in (recorded, marked))
        assert recorded.wait(5) == marked.wait(5) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        for proc in (recorded, marked, stranger):
            proc.kill()
            proc.wait()


def test_reap_names_what_listened(tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"],
                              env={**os.environ, RUN_ID_ENV: "run2"}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            ports = [c.laddr.port for c in listening_sockets(psutil.Process(server.pid))]
            if ports:
                break
            time.sleep(0.1)
        lines = reap_processes(LiveRun("run2", pid=1, pid_started=0.0))
        assert lines == [f"stopped process {server.pid} ({' '.join(server.args)}), "
                         f"listening on port {ports[0]}"]
    finally:
        server.kill()
        server.wait()


def test_work_dirs_recorded_or_named_after_the_run_but_not_kept_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    recorded = tmp_path / "elsewhere"
    unsaved = tmp_path / "minikf-run3-abcd"  # made just before the record was saved
    kept = tmp_path / "minikf-run3-kept"
    other = tmp_path / "minikf-run4-xyz"
    for path in (recorded, unsaved, kept, other):
        (path / "sub").mkdir(parents=True)
    record = LiveRun("run3", pid=1, pid_started=0.0, workdirs=[str(recorded)], kept=[str(kept)])
    assert sorted(remove_workdirs(record)) == sorted(
        [f"removed work dir {recorded}", f"removed work dir {unsaved}"])
    assert not recorded.exists() and not unsaved.exists() and kept.exists() and other.exists()
    assert remove_workdirs(record) == []


def test_a_dead_owner_makes_the_record_stale(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(gone.pid).create_time()
    gone.wait()
    assert not LiveRun("x", pid=gone.pid, pid_started=started).owner_alive()
    assert LiveRun.create("y", home=tmp_path).owner_alive()
    assert not LiveRun("z", pid=os.getpid(), pid_started=started - 100).owner_alive()
    assert Path(tmp_path / "runs" / "live" / "y.json").is_file()


def test_a_home_that_cannot_hold_the_record_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(MinikfError) as exc:
        LiveRun.create("r", home=tmp_path / "file")
    assert exc.value.message.startswith(f"cannot write the run's record in {tmp_path / 'file'}")
    assert exc.value.message.endswith("set MINIKF_HOME to a writable directory")
