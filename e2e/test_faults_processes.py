"""Fault injection on the processes a run starts: the real CLI (`python -m minikf.cli run`) in a
subprocess, killed or signalled at each step that starts processes, or one of its processes killed
under it. For each fault: the exit code, one clear line on stderr and no traceback, nothing of the
run left running or listening (psutil over the CLI's process tree as it was just before the fault,
containers by label where Docker runs), no work dir left (after `minikf clean` where the CLI itself
was killed) and a results.json that says what happened.

Each run has its own MINIKF_HOME (the live-run records) and TMPDIR (its work dir), so nothing is
confused with another test's or another user's runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from minikf.runtime.ports import free_port

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "fashion-mnist-sample"
JOURNEY = REPO / "scenarios" / "fashion-mnist.yaml"
WORKER = "minikf.workload.train_worker"
SERVER = "minikf.workload.server"
WARM = "minikf.platforms.warm"
WORKER_RUNS = f"-m {WORKER} "  # a worker itself, not its warm parent
GONE_WITHIN_S = 30.0  # how long what the run started may take to go once its CLI is gone


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _alive(pid: int, created: float) -> bool:
    """The same process (pid and start time) is still there and not a zombie."""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - created) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _listening(port: int) -> bool:
    return any(c.laddr.port == port and c.status == psutil.CONN_LISTEN
               for c in psutil.net_connections("inet"))


@dataclass
class Run:
    """One `minikf run` in a subprocess of its own session, with its own home and temp dir."""

    tmp: Path
    proc: subprocess.Popen | None = None
    snapshot: dict[int, tuple[float, str]] = field(default_factory=dict)
    # TMPDIR: short, as a kernel's ZMQ socket path under it must fit in 107 bytes
    temp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mkf-")))
    snapshot_run_id: str | None = None
    # Work dirs outside `temp`: a training job's on /dev/shm (from the live record, at the snapshot)
    elsewhere: list[Path] = field(default_factory=list)

    @property
    def results(self) -> Path:
        return self.tmp / "results"

    @property
    def workdirs(self) -> list[Path]:
        return sorted(self.temp.glob("minikf-*")) + [p for p in self.elsewhere if p.exists()]

    def recorded_workdirs(self) -> list[Path]:
        """The work dirs the run's live record lists now."""
        for path in (self.tmp / "home" / "runs" / "live").glob("*.json"):
            return [Path(p) for p in json.loads(path.read_text()).get("workdirs", [])]
        return []

    def env(self) -> dict[str, str]:
        return {**os.environ, "MINIKF_HOME": str(self.tmp / "home"), "TMPDIR": str(self.temp),
                "MINIKF_METADATA_DB": str(self.tmp / "metadata.db"), "CI": "1",
                "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def start(self, scenario: Path, *params: str, platform: str = "local") -> Run:
        argv = [sys.executable, "-m", "minikf.cli", "run", str(scenario), "--platform", platform,
                "--results", str(self.results), "--quiet"]
        for param in params:
            argv += ["--param", param]
        with open(self.tmp / "stderr", "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                                         env=self.env(), start_new_session=True, cwd=self.tmp)
        return self

    def stderr(self) -> str:
        return (self.tmp / "stderr").read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    def wait_for(self, marker: str, count: int = 1, timeout: float = 240) -> list[psutil.Process]:
        """The CLI's descendants whose command line has `marker`, once there are `count`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the run ended first:\n{self.stderr()[-3000:]}"
            found = [p for p in self.tree() if marker in _cmdline(p)]
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no {count} x {marker} after {timeout:g}s:\n{self.stderr()[-3000:]}")

    def take_snapshot(self, expect_processes: bool = True) -> None:
        """Everything the run has started, as it is now (pid -> start time, command line)."""
        self.snapshot_run_id = self.run_id()
        self.elsewhere = [p for p in self.recorded_workdirs() if not p.is_relative_to(self.temp)]
        for proc in self.tree():
            try:
                self.snapshot[proc.pid] = (proc.create_time(), _cmdline(proc))
            except psutil.Error:
                pass
        assert self.snapshot or not expect_processes, "the run had started no process"

    def left_running(self) -> list[str]:
        return [f"{pid} {cmd[:150]}" for pid, (created, cmd) in self.snapshot.items()
                if _alive(pid, created)]

    def finish(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)

    def result(self) -> dict:
        return json.loads((self.results / "results.json").read_text())

    def run_id(self) -> str | None:
        """From the run's live record, else its results."""
        for path in (self.tmp / "home" / "runs" / "live").glob("*.json"):
            return path.stem
        results = self.results / "results.json"
        return json.loads(results.read_text())["run_id"] if results.is_file() else None

    def clean(self) -> subprocess.CompletedProcess:
        """`minikf clean` for this run only: never another test's or user's containers."""
        run_id = self.snapshot_run_id or self.run_id()
        only = ["--run", run_id] if run_id else []
        return subprocess.run([sys.executable, "-m", "minikf.cli", "clean", *only], env=self.env(),
                              capture_output=True, text=True, timeout=120, cwd=self.tmp)

    def discard(self) -> None:
        """After the test, pass or fail: nothing of this run may stay behind on the machine."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid, (created, _) in self.snapshot.items():
            if _alive(pid, created):
                try:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                except OSError:
                    pass
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.proc is not None:
            self.clean()
        for path in [self.temp, *self.elsewhere]:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run(tmp_path):
    started = Run(tmp_path)
    yield started
    started.discard()


def _assert_nothing_left(run: Run, ports: tuple[int, ...] = ()) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while run.left_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.left_running() == [], "left running after the run"
    assert [p for p in ports if _listening(p)] == [], "left listening"
    records = run.tmp / "home" / "runs" / "live"
    assert not records.is_dir() or [p.name for p in records.iterdir()] == []
    _assert_no_container(run)


def _assert_no_container(run: Run) -> None:
    from minikf.images import engine

    if engine.available() is not None:
        return
    cli = engine.client()
    try:
        mine = [c.name for c in cli.containers.list(all=True, filters={"label": "minikf.run"},
                                                     ignore_removed=True)
                if str(run.tmp) in json.dumps(c.attrs.get("Mounts", []))]
    finally:
        cli.close()
    assert mine == [], "containers left"


def _assert_one_clear_line(text: str, expected: str) -> None:
    assert "Traceback" not in text, text
    assert any(expected in line for line in text.splitlines()), text


def _assert_cli_killed_then_cleaned(run: Run, step: str, ports: tuple[int, ...] = ()) -> None:
    """After kill -9 of the CLI: what it started goes by itself; `minikf clean` finds nothing of
    it running (or removes it) and removes the work dir; results.json says which step was cut."""
    assert run.finish(10) == -signal.SIGKILL
    assert "Traceback" not in run.stderr()
    _assert_nothing_left_but_records(run, ports)
    cleaned = run.clean()
    assert cleaned.returncode == 0, cleaned.stderr
    assert "Traceback" not in cleaned.stdout + cleaned.stderr
    assert run.workdirs == [], cleaned.stdout
    _assert_nothing_left(run, ports)
    result = run.result()
    assert result["status"] == "interrupted", result["message"]
    statuses = {s["name"]: s["status"] for s in result["steps"]}
    assert statuses[step] == "interrupted", statuses
    after = [s for s in result["steps"] if s["status"] not in ("passed", "interrupted")]
    assert all(s["status"] == "skipped" and s["message"] == "interrupted" for s in after), after


def _assert_nothing_left_but_records(run: Run, ports: tuple[int, ...]) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while run.left_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.left_running() == [], "left running after kill -9 of the CLI"
    assert [p for p in ports if _listening(p)] == [], "left listening after kill -9 of the CLI"
    _assert_no_container(run)


def _kill_cli(run: Run, expect_processes: bool = True) -> None:
    run.take_snapshot(expect_processes)
    run.proc.kill()


# --- scenarios written for these faults -------------------------------------------------------

SERVE_THEN_PAUSE = f"""name: faults-serve
requires: [training, serving]
params: {{port: 0, pause: 120}}
steps:
  - name: download
    kind: download
    args: {{mirrors: "{SAMPLE}", sample: true}}
  - name: preprocess
    kind: preprocess
    args: {{raw_dir: "${{steps.download.outputs.raw_dir}}"}}
  - name: train
    kind: train
    args: {{data_dir: "${{steps.preprocess.outputs.data_dir}}", workers: 1, epochs: 1}}
  - name: serve
    kind: serve
    args: {{model_dir: "${{steps.train.outputs.model_dir}}", port: "${{params.port}}",
           token: "${{secrets.serve_token}}"}}
  - name: pause
    kind: command
    args: {{argv: [python, -c, "import sys, time; time.sleep(float(sys.argv[1]))", "${{params.pause}}"]}}
  - name: predict
    kind: predict
    args: {{url: "${{steps.serve.outputs.url}}", token: "${{secrets.serve_token}}",
           data_dir: "${{steps.preprocess.outputs.data_dir}}", count: 5}}
    expect: ["errors == 0"]
"""

PIPELINE = f"""name: faults-pipeline
requires: [pipelines]
steps:
  - name: pipeline
    kind: pipeline
    args:
      pipeline: fashion-mnist
      arguments: {{mirrors: "{SAMPLE}", sample: true, epochs: 500, batch_size: 32}}
"""

TUNING = f"""name: faults-tuning
requires: [tuning]
steps:
  - name: download
    kind: download
    args: {{mirrors: "{SAMPLE}", sample: true}}
  - name: preprocess
    kind: preprocess
    args: {{raw_dir: "${{steps.download.outputs.raw_dir}}"}}
  - name: tune
    kind: tune
    args:
      data_dir: ${{steps.preprocess.outputs.data_dir}}
      spec:
        objective: {{metric: accuracy, type: maximize}}
        max_trials: 2
        parallel_trials: 1
        parameters:
          - {{name: epochs, type: int, min: 99, max: 100}}
"""

NOTEBOOK = """name: faults-notebook
requires: [notebooks]
steps:
  - name: notebook
    kind: notebook
    args: {notebook: "NOTEBOOK"}
"""


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _sleeping_notebook(tmp: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("out_dir = '.'"),
                nbformat.v4.new_code_cell("import time\ntime.sleep(600)")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    path = tmp / "sleeps.ipynb"
    nbformat.write(nb, path)
    return path


class SlowMirror(ThreadingHTTPServer):
    """The sample files over HTTP at a trickle: a download that is still going when killed."""

    def __init__(self) -> None:
        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(SAMPLE), **kwargs)

            def copyfile(self, source, outputfile):
                while chunk := source.read(2048):
                    outputfile.write(chunk)
                    time.sleep(0.2)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request, client_address) -> None:
        """The client was killed mid-file: that is the point, not an error to print."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


@pytest.fixture
def slow_mirror():
    mirror = SlowMirror()
    yield mirror
    mirror.shutdown()
    mirror.server_close()


# --- kill -9 of the CLI at each step that starts processes -----------------------------------

@pytest.mark.slow
def test_kill_cli_during_download_stops_the_warm_parents(run, slow_mirror):
    run.start(JOURNEY, f"mirrors={slow_mirror.url}", "sample=true")
    run.wait_for(WARM, count=2)
    time.sleep(1)
    _kill_cli(run)
    _assert_cli_killed_then_cleaned(run, "download")


@pytest.mark.slow
def test_kill_cli_during_training_stops_workers_and_warm_parents(run):
    run.start(JOURNEY, "epochs=500", "workers=2")
    run.wait_for(WORKER_RUNS, count=2)
    _kill_cli(run)
    _assert_cli_killed_then_cleaned(run, "train")


@pytest.mark.slow
def test_kill_cli_and_its_reaper_then_minikf_clean_finds_what_was_left(run):
    """As when a cgroup is OOM-killed whole: no reaper either. PDEATHSIG still stops the
    processes; `minikf clean` finds the rest through the live record."""
    run.start(JOURNEY, "epochs=500", "workers=2")
    run.wait_for(WORKER_RUNS, count=2)
    reaper, = [p for p in run.tree() if "minikf.engine.reaper" in _cmdline(p)]
    run.take_snapshot()
    reaper.kill()
    run.proc.kill()
    assert run.finish(10) == -signal.SIGKILL
    _assert_nothing_left_but_records(run, ())
    workdirs = run.workdirs
    # the run's temp dir, and the 2-worker job's directory on /dev/shm (shm_allreduce.py)
    assert [p.parent for p in workdirs] == [run.temp, Path("/dev/shm")], workdirs
    cleaned = run.clean()
    assert cleaned.returncode == 0, cleaned.stderr
    lines = cleaned.stdout.splitlines()
    assert lines[0] == (f"run {run.snapshot_run_id}: marked the run interrupted in "
                        f"{run.results / 'results.json'}")
    assert sorted(lines[1:-1]) == sorted(f"run {run.snapshot_run_id}: removed work dir {p}"
                                         for p in workdirs)
    assert lines[-1] == "3 leftover(s) removed"
    assert run.workdirs == []
    _assert_nothing_left(run)
    assert {s["name"]: s["status"] for s in run.result()["steps"]}["train"] == "interrupted"


@pytest.mark.slow
def test_kill_cli_while_the_model_server_listens(run, tmp_path):
    port = free_port()
    run.start(_write(tmp_path, "serve.yaml", SERVE_THEN_PAUSE), f"port={port}")
    run.wait_for("time.sleep")
    assert _listening(port)
    _kill_cli(run)
    _assert_cli_killed_then_cleaned(run, "pause", ports=(port,))


@pytest.mark.slow
def test_kill_cli_during_a_pipeline_task(run, tmp_path):
    run.start(_write(tmp_path, "pipeline.yaml", PIPELINE))
    run.wait_for(WORKER_RUNS)  # the train task's own subprocess, two levels under the driver
    _kill_cli(run)
    _assert_cli_killed_then_cleaned(run, "pipeline")


@pytest.mark.slow
def test_kill_cli_during_a_notebook_step(run, tmp_path):
    notebook = _sleeping_notebook(tmp_path)
    run.start(_write(tmp_path, "notebook.yaml", NOTEBOOK.replace("NOTEBOOK", str(notebook))))
    run.wait_for("ipykernel")
    time.sleep(2)  # the sleeping cell runs
    _kill_cli(run)
    _assert_cli_killed_then_cleaned(run, "notebook")


@pytest.mark.slow
def test_kill_cli_during_a_tuning_trial(run, tmp_path):
    run.start(_write(tmp_path, "tuning.yaml", TUNING))
    run.wait_for(WORKER_RUNS)
    _kill_cli(run)
    _assert_cli_killed_then_cleaned(run, "tune")


# --- a process of the run killed under it -----------------------------------------------------

@pytest.mark.slow
def test_kill_a_worker_fails_the_step_and_stops_the_other(run):
    run.start(JOURNEY, "epochs=500", "workers=2")
    workers = run.wait_for(WORKER_RUNS, count=2)
    run.take_snapshot()
    workers[-1].kill()
    assert run.finish() == 1
    _assert_one_clear_line(run.stderr(), "fashion-mnist: failed. step train: worker")
    assert "signal SIGKILL" in run.stderr()
    _assert_nothing_left(run)
    assert run.workdirs == []
    result = run.result()
    assert result["status"] == "failed"
    assert [s["status"] for s in result["steps"]][2:4] == ["failed", "skipped"]


@pytest.mark.slow
def test_kill_the_model_server_fails_predict(run, tmp_path):
    port = free_port()
    run.start(_write(tmp_path, "serve.yaml", SERVE_THEN_PAUSE), f"port={port}", "pause=8")
    run.wait_for("time.sleep")
    servers = [p for p in run.tree() if SERVER in _cmdline(p) and WARM not in _cmdline(p)]
    assert len(servers) == 1 and _listening(port)
    run.take_snapshot()
    servers[0].kill()
    assert run.finish() == 1
    _assert_one_clear_line(run.stderr(), "faults-serve: failed. step predict:")
    _assert_nothing_left(run, ports=(port,))
    assert run.workdirs == []
    assert {s["name"]: s["status"] for s in run.result()["steps"]}["predict"] == "failed"


@pytest.mark.slow
def test_kill_a_warm_parent_stops_what_it_forked(run):
    run.start(JOURNEY, "epochs=500", "workers=2")
    run.wait_for(WORKER_RUNS, count=2)
    parent, = [p for p in run.tree() if f"{WARM} {WORKER}" in _cmdline(p)]
    run.take_snapshot()
    parent.kill()
    # The workers go with their parent: the step fails now, not after 500 epochs.
    assert run.finish(timeout=60) == 1
    _assert_one_clear_line(run.stderr(), "fashion-mnist: failed. step train: worker")
    assert "was lost: its warm parent (pid " in run.stderr()
    _assert_nothing_left(run)
    assert run.workdirs == []


# --- signals to the CLI -----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_cli_stops_the_run(run, sig, code):
    run.start(JOURNEY, "epochs=500", "workers=2")
    run.wait_for(WORKER_RUNS, count=2)
    run.take_snapshot()
    run.proc.send_signal(sig)
    assert run.finish() == code
    _assert_one_clear_line(run.stderr(), f"interrupted by {sig.name}")
    _assert_nothing_left(run)
    assert run.workdirs == []
    result = run.result()
    assert result["status"] == "interrupted"
    steps = {s["name"]: s for s in result["steps"]}
    assert steps["train"]["status"] == "interrupted" and sig.name in steps["train"]["message"]
    assert {steps[n]["status"] for n in ("evaluate", "serve", "predict")} == {"skipped"}
    assert steps["predict"]["message"] == "interrupted"


# --- containers ------------------------------------------------------------------------------

@pytest.mark.slow
def test_kill_cli_during_training_in_containers(run):
    from minikf.images import engine
    from minikf.platforms.docker import DockerPlatform
    from minikf.runtime.errors import MinikfError

    if engine.available() is not None:
        pytest.skip(f"no Docker Engine: {engine.available()}")
    try:
        DockerPlatform().check_images()
    except MinikfError as exc:
        pytest.skip(f"images not usable: {exc.message}")
    cli = engine.client()
    run.start(JOURNEY, "epochs=500", "workers=2", platform="docker")
    deadline, mine = time.monotonic() + 240, []
    while len(mine) < 2 and time.monotonic() < deadline and run.proc.poll() is None:
        mine = [c for c in cli.containers.list(filters={"label": "minikf.run"}, ignore_removed=True)
                if WORKER in " ".join(c.attrs["Config"]["Cmd"] or [])
                and str(run.temp) in json.dumps(c.attrs.get("Mounts", []))]  # not another run's
        time.sleep(0.5)
    assert len(mine) == 2, run.stderr()[-3000:]
    _kill_cli(run, expect_processes=False)  # the workers run in containers
    run_id = mine[0].labels["minikf.run"]
    deadline = time.monotonic() + GONE_WITHIN_S
    label = {"label": f"minikf.run={run_id}"}
    while cli.containers.list(all=True, filters=label, ignore_removed=True) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cli.containers.list(all=True, filters=label, ignore_removed=True) == [], \
        "containers left after kill -9"
    cli.close()
    _assert_cli_killed_then_cleaned(run, "train")
