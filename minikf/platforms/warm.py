"""Warm starts: one interpreter per module, started when the run starts, that imports the module a
later step will run and then forks a child for each process that step launches (what gunicorn's
--preload and multiprocessing's forkserver do).

Why: on the local platform most of the journey's fixed cost was interpreters importing their
frameworks before doing any work: each train worker imported torch and torch._dynamo (3-5 s on
2 cores), the model server kserve (about 2 s). Started ahead, these imports overlap the download
and preprocess steps and each other, and the N workers of a job share one import instead of
paying N on 2 cores.

The warm side, `python -m minikf.platforms.warm MODULE` (its stderr is its own log):
- imports MODULE and calls its `warm_up()` if it has one (what the framework imports lazily on
  first use), touching no thread pool, so that forking stays safe;
- reads one JSON `WarmRequest` per line on stdin; for each, forks a child that copies the warm
  log (import warnings) into the request's log, points stdout and stderr there, starts its own
  session, applies the environment and runs MODULE as `__main__` with the arguments, as
  `python -m MODULE ARGS` would; it answers {"id", "pid"} on stdout;
- reaps its children and reports {"pid", "code"} for each (the code as Popen.returncode gives it);
- on EOF it takes no more requests and exits once its children have; SIGTERM it passes on to
  its children, and it exits once they have (so their exit codes are still reported).

The platform side (`WarmParent`) hands out `Forked` handles with Popen's poll/wait/returncode/pid,
so that steps and cleanup treat a forked process like any other; a warm parent that failed to
import is skipped and the step starts its process cold.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import json
import os
import runpy
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from minikf.platforms.jobs import describe_exit
from minikf.runtime.errors import MinikfError
from minikf.runtime.lifeline import die_with_parent

WARM_NOTE = "minikf: warm start, forked after the imports (minikf/platforms/warm.py)\n"
READY_TIMEOUT_S = 300.0  # how long a launch waits for its warm parent to finish importing
UNKNOWN_EXIT = 255  # a child whose warm parent died before reporting its exit


@dataclass
class WarmRequest:
    """One process to fork: `python -m MODULE *args` with `env` added, output to `log`."""

    id: int
    args: list[str]
    env: dict[str, str]
    log: str


# --- the warm side ----------------------------------------------------------------------------

def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _show_command_line(argv: list[str]) -> None:
    """What `ps` and /proc/PID/cmdline show: the command this child runs, not the warm parent's."""
    try:
        from setproctitle import setproctitle
    except ImportError:  # an environment without it: ps shows the warm parent's command line
        return
    setproctitle(shlex.join(argv))


def _become(module: str, request: WarmRequest, warm_log: Path) -> int:
    """In the forked child: become `python -m module *args`; returns its exit code."""
    os.setsid()
    log_path = Path(request.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(warm_log.read_bytes() if warm_log.exists() else b"")
        log.write(WARM_NOTE.encode())
        log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.environ.update(request.env)
    sys.argv = [module, *request.args]
    _show_command_line([sys.executable, "-m", module, *request.args])
    sys.modules.pop(module, None)  # run it afresh as __main__ (else runpy warns)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException:  # as the interpreter would: the traceback in the log, exit 1
        traceback.print_exc()
        return 1


def _fork(module: str, request: WarmRequest, warm_log: Path) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        die_with_parent(parent)  # a warm parent that is killed takes its children with it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the module's own, not the warm parent's
        code = _become(module, request, warm_log)
        atexit._run_exitfuncs()  # what a normal interpreter exit would run
    except BaseException:  # before the module ran (e.g. the log cannot be opened)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(children: set[int], replies) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            children.discard(pid)
            replies.write(json.dumps({"pid": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")


def serve(module: str, warm_log: Path) -> None:
    """Fork a child per request until stdin closes and the children have exited. SIGTERM is
    passed on to the children, whose exits are still reported before this process ends."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints go to the warm log, not into the reply pipe
    children: set[int] = set()
    stopping = []

    def stop(signum, frame) -> None:
        stopping.append(signum)
        for pid in list(children):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:  # forked an instant ago: not its own group yet
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, stop)
    while (not stopping and not sys.stdin.closed) or children:
        if not stopping and not sys.stdin.closed and select.select([sys.stdin], [], [], 0.05)[0]:
            line = sys.stdin.readline()
            if not line:
                sys.stdin.close()
            elif line.strip():
                request = WarmRequest(**json.loads(line))
                pid = _fork(module, request, warm_log)
                children.add(pid)
                replies.write(json.dumps({"id": request.id, "pid": pid}) + "\n")
        else:
            time.sleep(0.02)
        _reap(children, replies)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python -m minikf.platforms.warm MODULE WARM_LOG  (then requests on stdin)")
    module, warm_log = sys.argv[1], Path(sys.argv[2])
    warm_up = getattr(importlib.import_module(module), "warm_up", None)
    if callable(warm_up):
        warm_up()
    serve(module, warm_log)
    # Every child reported: skip tearing down what was imported (torch: seconds), as the run's
    # cleanup waits for this process.
    sys.stderr.flush()
    os._exit(0)


# --- the platform side ------------------------------------------------------------------------

class Forked:
    """A process forked by a warm parent, with the parts of Popen that steps and cleanup use."""

    def __init__(self, parent: WarmParent, pid: int, args: list[str]) -> None:
        self.parent, self.pid, self.args = parent, pid, args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.parent.exit_code(self.pid)
        return self.returncode

    @property
    def lost(self) -> str:
        """Why the exit code is unknown ('' when it is known): its warm parent died first."""
        if self.returncode != UNKNOWN_EXIT or self.pid in self.parent.codes:
            return ""
        code = self.parent.proc.poll()
        how = f", {describe_exit(code)}" if code is not None else ""
        return f"its warm parent (pid {self.parent.proc.pid}{how}) died and took it along"

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.05)
        return self.returncode


@dataclass
class WarmParent:
    """The platform's end of one warm interpreter: send requests, read pids and exit codes."""

    module: str
    proc: subprocess.Popen
    pids: dict[int, int] = field(default_factory=dict)  # request id -> pid
    codes: dict[int, int] = field(default_factory=dict)  # pid -> exit code
    gone: bool = False  # its stdout closed: it exited (or failed to import)
    changed: threading.Condition = field(default_factory=threading.Condition)
    ids: itertools.count = field(default_factory=itertools.count)
    writing: threading.Lock = field(default_factory=threading.Lock)  # parallel trials fork at once

    @classmethod
    def start(cls, module: str, resources, warm_log: Path) -> WarmParent:
        warm_log.parent.mkdir(parents=True, exist_ok=True)
        proc = resources.spawn([sys.executable, "-m", __name__, module, str(warm_log)], warm_log,
                               env=dict(os.environ), stdin_pipe=True, stdout_pipe=True)
        parent = cls(module, proc)
        threading.Thread(target=parent._read, name=f"warm-{module}", daemon=True).start()
        return parent

    def _read(self) -> None:
        for line in self.proc.stdout:
            reply = json.loads(line)
            with self.changed:
                if "id" in reply:
                    self.pids[reply["id"]] = reply["pid"]
                else:
                    self.codes[reply["pid"]] = reply["code"]
                self.changed.notify_all()
        with self.changed:
            self.gone = True
            self.changed.notify_all()

    def fork(self, args: list[str], env: dict[str, str], log_path: Path) -> Forked | None:
        """`python -m MODULE *args`, forked once the imports are done; None if this parent
        cannot (it failed to import, or died): start the process cold then."""
        request = WarmRequest(id=next(self.ids), args=args, env=env, log=str(log_path))
        try:
            with self.writing:
                self.proc.stdin.write((json.dumps(asdict(request)) + "\n").encode())
                self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):  # ValueError: closed at the run's end
            return None
        with self.changed:
            self.changed.wait_for(lambda: request.id in self.pids or self.gone, READY_TIMEOUT_S)
            pid = self.pids.get(request.id)
        argv = [sys.executable, "-m", self.module, *args]
        return Forked(self, pid, argv) if pid else None

    def exit_code(self, pid: int) -> int | None:
        with self.changed:
            if pid in self.codes:
                return self.codes[pid]
            if not self.gone:
                return None
        try:  # the parent died first: nobody can tell the code any more
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            pass
        return UNKNOWN_EXIT

    def close(self) -> None:
        """No more requests: it exits once its children have."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass


@dataclass
class WarmPool:
    """The warm parents of one run, by module."""

    scratch: Path
    parents: dict[str, WarmParent] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: bool = False  # the run is being torn down

    def start(self, module: str, resources) -> None:
        with self.lock:
            if module not in self.parents:
                self.parents[module] = WarmParent.start(module, resources,
                                                        self.scratch / f"{module}.log")

    def take(self, argv: list[str], env: dict[str, str], log_path: Path, resources):
        """A process now running `argv` (`python -m MODULE ...`) forked from a warm parent and
        tracked by `resources`, or None: start it cold. Raises MinikfError once the run is
        being torn down: a step thread still launching then must not start anything."""
        if len(argv) < 3 or argv[0] != sys.executable or argv[1] != "-m":
            return None
        with self.lock:
            parent = self.parents.get(argv[2])
        forked = parent.fork(argv[3:], env, log_path) if parent else None
        if forked is not None:
            resources.adopt(forked)
        elif self.released:
            raise MinikfError(f"not starting {argv[2]}: the run is stopping")
        return forked

    def release(self) -> None:
        with self.lock:
            self.released = True
            parents, self.parents = list(self.parents.values()), {}
        for parent in parents:
            parent.close()


if __name__ == "__main__":
    main()
