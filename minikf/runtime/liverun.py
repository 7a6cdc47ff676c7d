"""The record of a live run: $MINIKF_HOME/runs/live/<run id>.json (default ~/.minikf).

Written when a run starts, rewritten (atomically: a temp file renamed over it) as the run starts
processes, makes work dirs and moves from step to step, removed when the run has cleaned up and
written its results. A record whose minikf process is gone (its pid and start time no longer
match a living process) is what a killed run left: its reaper and `minikf clean` stop what it
lists and remove it (`reap_processes`, `remove_workdirs`; the engine's reaper does the rest).

A process is matched by pid *and* start time, so a pid the system has since given to another
program is never touched; the run's other processes (group members, setsid'd grandchildren) are
found by the marker MINIKF_RUN_ID=<run id> in their environment (lifeline.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import psutil

from minikf.runtime.errors import MinikfError
from minikf.runtime.lifeline import RUN_ID_ENV
from minikf.runtime.sockets import listening_sockets

HOME_ENV = "MINIKF_HOME"
SAME_START_S = 0.05  # psutil's start times of one process agree to the tick (10 ms)


def minikf_home() -> Path:
    """$MINIKF_HOME, else ~/.minikf: where profiles, the lineage store and these records live."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".minikf").expanduser()


def live_dir(home: Path | None = None) -> Path:
    return (home or minikf_home()) / "runs" / "live"


def started_at(pid: int) -> float | None:
    """The process's start time (seconds since the epoch), None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_running(pid: int, started: float) -> bool:
    """The process `pid` that started at `started` is still there (and is not a zombie)."""
    try:
        proc = psutil.Process(pid)
        return (abs(proc.create_time() - started) < SAME_START_S
                and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


@dataclass
class LiveRun:
    """What a run has started, as far as anyone outside it needs to stop it."""

    run_id: str
    pid: int  # the minikf process running it
    pid_started: float
    started: str = ""  # UTC, ISO 8601
    scenario: str = ""
    platform: str = ""
    workdirs: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # work dirs the run was asked to keep
    processes: list[dict] = field(default_factory=list)  # {"pid", "started", "argv"}
    ports: list[int] = field(default_factory=list)
    platform_leftovers: dict = field(default_factory=dict)  # platform name -> what to remove
    progress: dict = field(default_factory=dict)  # the engine's: results so far, current step
    path: Path | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(cls, run_id: str, home: Path | None = None, **values) -> LiveRun:
        record = cls(run_id, os.getpid(), started_at(os.getpid()) or time.time(), **values)
        record.path = live_dir(home) / f"{run_id}.json"
        try:
            record.save()
        except OSError as exc:
            raise MinikfError(f"cannot write the run's record in {record.path.parent}: "
                              f"{exc.strerror or exc}; set {HOME_ENV} to a writable directory",
                              exit_code=2) from None
        return record

    @classmethod
    def load(cls, path: Path) -> LiveRun:
        """Raises ValueError (with the file named) for a record that cannot be read."""
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in fields(cls)} - {"path"}
            record = cls(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable live-run record ({exc})") from None
        record.path = path
        return record

    def save(self) -> None:
        """Atomically: readers see the old record or the new one, never half of one. Not
        fsync'd: what it names (processes) does not outlive the machine anyway."""
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.run_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, default=str)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def owner_alive(self) -> bool:
        """The minikf process that runs it is still there: its run is not stale."""
        return is_running(self.pid, self.pid_started)

    def add_process(self, pid: int, argv: list[str]) -> None:
        self.processes.append({"pid": pid, "started": started_at(pid) or 0.0,
                               "argv": " ".join(argv)[:300]})

    @contextlib.contextmanager
    def locked(self):
        """Held while a reaper or `minikf clean` works on this run; yields False if another
        one holds it."""
        assert self.path is not None
        try:
            handle = open(self.path, "rb")  # noqa: SIM115  (held for the block)
        except FileNotFoundError:
            yield False
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True


def live_runs(home: Path | None = None) -> tuple[list[LiveRun], list[str]]:
    """Every record in the home, and one line for each that cannot be read."""
    folder = live_dir(home)
    records, problems = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(LiveRun.load(path))
        except ValueError as exc:
            problems.append(str(exc))
    return records, problems


# --- stopping what a dead run left -------------------------------------------------------------

def _marked(proc: psutil.Process, run_id: str) -> bool:
    try:
        return proc.environ().get(RUN_ID_ENV) == run_id
    except (psutil.Error, OSError):
        return False


def run_processes(record: LiveRun) -> list[psutil.Process]:
    """The processes of the run still there: the recorded ones (same pid and start time), their
    descendants, and any process carrying the run's marker. Never this process."""
    found: dict[int, psutil.Process] = {}
    for entry in record.processes:
        if is_running(entry["pid"], entry["started"]):
            proc = psutil.Process(entry["pid"])
            found[proc.pid] = proc
    for proc in psutil.process_iter():
        if proc.pid not in found and _marked(proc, record.run_id):
            found[proc.pid] = proc
    for proc in list(found.values()):
        try:
            found.update({child.pid: child for child in proc.children(recursive=True)})
        except psutil.Error:
            pass
    found.pop(os.getpid(), None)
    return [p for p in found.values() if _running(p)]


def _describe(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())[:120]
        ports = sorted({c.laddr.port for c in listening_sockets(proc)})
    except psutil.Error:
        return f"process {proc.pid}"
    listening = f", listening on port {', '.join(map(str, ports))}" if ports else ""
    return f"process {proc.pid} ({cmd}){listening}"


def reap_processes(record: LiveRun, grace: float = 3.0) -> list[str]:
    """SIGTERM every process of the run, SIGKILL what is left after `grace`; one line each."""
    procs = run_processes(record)
    lines = [f"stopped {_describe(p)}" for p in procs]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    alive = _wait_gone(procs, grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    lines += [f"could not stop process {p.pid}" for p in _wait_gone(alive, 2.0)]
    return lines


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of `procs` still running after `timeout` (a zombie has stopped: only its parent
    can reap it)."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _running(p)]
    return alive


def remove_workdirs(record: LiveRun) -> list[str]:
    """The run's work dirs: the recorded ones and any `minikf-<run id>-*` in the temp dir (one
    made just before the record was saved)."""
    paths = {Path(p) for p in record.workdirs}
    paths |= set(Path(tempfile.gettempdir()).glob(f"minikf-{record.run_id}-*"))
    paths -= {Path(p) for p in record.kept}
    lines = []
    for path in sorted(paths):
        if not path.exists():
            continue
        shutil.rmtree(path, ignore_errors=True)
        lines.append(f"could not remove work dir {path}" if path.exists() else f"removed work dir {path}")
    return lines
