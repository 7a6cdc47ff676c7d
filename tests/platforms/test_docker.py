"""The docker platform against the real Docker Engine and the images `minikf images build` made.

Skipped, with the reason, where no engine answers or the images are not built (CI builds
them in .ci/setup.d/20-docker.sh before the tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from minikf.images import engine
from minikf.runtime.processes import RunResources, stop_handle

REASON = engine.available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no Docker Engine: {REASON}")


def _platform():
    from minikf.platforms.docker import DockerPlatform
    from minikf.runtime.errors import MinikfError

    platform = DockerPlatform()
    try:
        platform.check_images()
    except MinikfError as exc:
        pytest.skip(f"images not usable: {exc.message}")
    return platform


@pytest.fixture
def docker_client():
    cli = engine.client()
    yield cli
    cli.close()


def _labelled(cli, run_id: str) -> list:
    return cli.containers.list(all=True, filters={"label": f"minikf.run={run_id}"}, ignore_removed=True)


@pytest.fixture
def work(tmp_path_factory):
    """A run-like work dir under the temp dir (minikf-<id>-...), as the engine makes."""
    import tempfile

    from minikf.platforms.docker import remove_labelled

    run_id = uuid.uuid4().hex[:12]
    path = Path(tempfile.mkdtemp(prefix=f"minikf-{run_id}-"))
    yield run_id, path
    cli = engine.client()
    remove_labelled(cli, run_id)  # also when an assertion failed half-way
    cli.close()
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_workload_runs_in_a_container_writes_the_work_dir_and_is_removed(work, docker_client):
    platform = _platform()
    run_id, workdir = work
    resources = RunResources(run_id=run_id)
    out = workdir / "out.txt"
    code = "import os, sys; open(sys.argv[1], 'w').write(os.environ['RANK'] + ' ' + sys.prefix); sys.exit(3)"
    handle = platform.launch([sys.executable, "-c", code, str(out)], {"RANK": "1"},
                             workdir / "logs" / "w.log", resources)
    assert handle.wait(timeout=60) == 3 and handle.returncode == 3
    assert out.read_text() == "1 /opt/minikf"  # the image's venv, not this host's python
    assert out.stat().st_uid == os.getuid()
    assert [c.labels["minikf.run"] for c in _labelled(docker_client, run_id)] == [run_id]
    assert resources.cleanup() == []
    assert _labelled(docker_client, run_id) == []


def test_logs_reach_the_log_file_and_stop_ends_a_running_workload(work, docker_client):
    platform = _platform()
    run_id, workdir = work
    resources = RunResources(run_id=run_id)
    log = workdir / "s.log"
    handle = platform.launch(["python3", "-c", "import time; print('up', flush=True); time.sleep(600)"],
                             {}, log, resources)
    deadline = time.monotonic() + 30
    while "up" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "up" in log.read_text()
    assert handle.poll() is None
    started = time.monotonic()
    stop_handle(handle, grace=1)
    assert handle.returncode not in (None, 0)
    assert time.monotonic() - started < 20
    assert _labelled(docker_client, run_id) == []
    resources.cleanup()


def test_cleanup_removes_a_run_that_is_still_running(work, docker_client):
    platform = _platform()
    run_id, workdir = work
    resources = RunResources(run_id=run_id)
    for _ in range(2):
        platform.launch(["python3", "-c", "import time; time.sleep(600)"], {}, workdir / "x.log", resources)
    assert len(_labelled(docker_client, run_id)) == 2
    assert resources.cleanup() == []
    assert _labelled(docker_client, run_id) == []


def test_minikf_clean_removes_leftovers_of_a_crashed_run(docker_client):
    _platform()
    run_id = "crashed" + uuid.uuid4().hex[:6]
    docker_client.containers.run("minikf/runtime:latest", ["sleep", "600"], detach=True,
                                 labels={"minikf.run": run_id, "minikf": "1"})
    docker_client.networks.create(f"minikf-{run_id}", labels={"minikf.run": run_id})
    proc = subprocess.run([sys.executable, "-m", "minikf.cli", "clean", "--run", run_id],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "removed container" in proc.stdout and "removed network" in proc.stdout
    assert _labelled(docker_client, run_id) == []
    assert docker_client.networks.list(filters={"label": f"minikf.run={run_id}"}) == []
    again = subprocess.run([sys.executable, "-m", "minikf.cli", "clean", "--run", run_id],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "nothing to clean" in again.stdout


def test_minikf_clean_leaves_the_containers_of_a_live_run(docker_client, tmp_path):
    """A container whose starting minikf process still runs belongs to a run in progress
    (maybe another home's, another user's CI job): `minikf clean` must not touch it. A killed
    run's, found through its live record, goes, and the run's results say it was cut."""
    from minikf.runtime.liverun import LiveRun

    _platform()
    live, dead = "live" + uuid.uuid4().hex[:6], "dead" + uuid.uuid4().hex[:6]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for run_id, owner in ((live, engine.this_process()), (dead, f"{gone.pid}:1.0")):
        docker_client.containers.run("minikf/runtime:latest", ["sleep", "600"], detach=True,
                                     labels={"minikf.run": run_id, "minikf": "1",
                                             engine.PROCESS_LABEL: owner})
    record = LiveRun(dead, pid=gone.pid, pid_started=1.0,
                     platform_leftovers={"docker": {"run_id": dead}})
    record.path = tmp_path / "home" / "runs" / "live" / f"{dead}.json"
    record.save()
    try:
        home = {**os.environ, "MINIKF_HOME": str(tmp_path / "home")}
        proc = subprocess.run([sys.executable, "-m", "minikf.cli", "clean"], capture_output=True,
                              text=True, timeout=120, env=home)
        assert proc.returncode == 0, proc.stderr
        assert f"run {dead}: removed container" in proc.stdout
        assert live not in proc.stdout
        assert len(_labelled(docker_client, live)) == 1 and _labelled(docker_client, dead) == []
        assert not record.path.exists()
    finally:
        from minikf.platforms.docker import remove_labelled

        remove_labelled(docker_client, live)
        remove_labelled(docker_client, dead)


def test_capabilities_are_what_works_and_other_scenarios_skip(tmp_path):
    from minikf.engine.runner import run_scenario
    from minikf.scenario.schema import load_scenario

    platform = _platform()
    assert platform.capabilities == {"pipelines", "training", "serving", "metadata", "tuning",
                                     "notebooks", "isolation"}
    scenario_file = tmp_path / "gpu.yaml"
    scenario_file.write_text("name: g\nrequires: [gpu]\nsteps:\n"
                             "  - name: s\n    kind: command\n    args: {argv: [true]}\n")
    result = run_scenario(load_scenario(scenario_file), platform, tmp_path / "results")
    assert result.status == "skipped" and "gpu" in result.message


@pytest.mark.timeout(900)
def test_unchanged_rebuild_is_a_no_op_in_seconds():
    from minikf.images.build import build_all

    _platform()
    build_all(say=lambda _msg: None)  # CI built them just before; here others may have edited code
    started = time.monotonic()
    results = build_all(say=lambda _msg: None)
    assert [r.built for r in results] == [False, False, False]
    assert time.monotonic() - started < 30


def test_a_base_without_python_is_one_clear_error_and_leaves_no_container(docker_client, tmp_path):
    import io
    import tarfile

    from minikf.images.build import build_all
    from minikf.runtime.errors import MinikfError

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"x\n"))
    tag = f"minikf-test/nopython:{uuid.uuid4().hex[:8]}"
    repo, _, version = tag.partition(":")
    docker_client.api.import_image_from_data(data.getvalue(), repository=repo, tag=version)
    try:
        with pytest.raises(MinikfError) as caught:
            build_all(base=tag, say=lambda _msg: None)
        assert "no usable python3" in caught.value.message and tag in caught.value.message
        assert docker_client.containers.list(all=True, filters={"ancestor": tag}) == []
    finally:
        docker_client.images.remove(tag, force=True)


def _alice(workdir: Path, memory_mb: int = 512):
    from minikf.platforms.base import UserLimits

    home = workdir / "home" / "profiles" / "alice"
    (home / "work").mkdir(parents=True)
    (workdir / "home" / "profiles" / "bob").mkdir(parents=True)
    return UserLimits(user="alice", cpus=1, memory_mb=memory_mb, home=home)


def test_a_users_container_has_their_quota_and_only_their_dir(work, docker_client):
    platform = _platform()
    run_id, workdir = work
    limits = _alice(workdir)
    held = platform.limited(limits)
    assert held.limits == limits and platform.limits is None  # the platform itself is unchanged
    resources = RunResources(run_id=run_id)
    out = limits.home / "work" / "seen.txt"
    profiles = workdir / "home" / "profiles"  # in the code, not named on the command line
    code = (f"import os, sys; open(sys.argv[1], 'w').write(repr(sorted(os.listdir({str(profiles)!r}))))")
    handle = held.launch(["python3", "-c", code, str(out)], {}, limits.home / "w.log", resources)
    assert handle.wait(timeout=60) == 0, (limits.home / "w.log").read_text()
    # a path in alice's dir mounts her dir, not the run dir around it: bob's is not there
    assert out.read_text() == "['alice']"
    container, = _labelled(docker_client, run_id)
    host = container.attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["MemorySwap"]) == (10**9, 512 << 20, 512 << 20)
    assert [m["Source"] for m in container.attrs["Mounts"]] == [str(limits.home.resolve())]
    assert container.labels["minikf.user"] == "alice"
    assert resources.cleanup() == []


def test_a_container_over_its_memory_quota_is_stopped_and_says_so(work):
    from minikf.platforms.jobs import watch_workers
    from minikf.runtime.errors import StepFailed

    platform = _platform()
    run_id, workdir = work
    held = platform.limited(_alice(workdir, memory_mb=128))
    resources = RunResources(run_id=run_id)
    log = workdir / "oom.log"
    started = time.monotonic()
    # 1 GiB, touched: far over 128 MiB, and there is no swap to slow it down instead
    handle = held.launch(["python3", "-c", "b = bytearray(1 << 30); print('survived')"], {}, log,
                         resources)
    with pytest.raises(StepFailed) as caught:
        watch_workers([(0, log, handle)])
    assert time.monotonic() - started < 60
    assert caught.value.message == (f"worker 0 killed: over its memory quota of 128 MiB "
                                    f"(OOMKilled) (see {log})")
    assert handle.returncode == 137 and "survived" not in log.read_text()
    assert resources.cleanup() == []


def test_a_library_started_process_runs_in_the_users_container(work, docker_client):
    """`command_argv` as nbclient uses it for a kernel: a foreground `docker run` whose exit
    code, working dir, env (passed by name) and mounts are the workload container's."""
    from minikf.platforms.base import Command

    platform = _platform()
    run_id, workdir = work
    limits = _alice(workdir)
    resources = RunResources(run_id=run_id)
    data = workdir / "data"
    data.mkdir()
    (data / "x.txt").write_text("data")
    code = ("import os, sys; print(os.getcwd(), os.environ['KERNEL_DIR'], open(sys.argv[1]).read(),"
            " os.path.exists(sys.argv[2]), file=sys.stderr); sys.exit(4)")
    bob = workdir / "home" / "profiles" / "bob"
    code = code.replace("sys.argv[2]", repr(str(bob)))
    command = Command([sys.executable, "-c", code, str(data / "x.txt")], env=["KERNEL_DIR"],
                      cwd=limits.home / "work", paths=[data])
    argv = platform.limited(limits).command_argv(command, resources)
    assert "--memory=512m" in argv and "--cpus=1" in argv
    assert not any("=" in a and "KERNEL_DIR=" in a for a in argv)  # the value is not on argv
    proc = subprocess.run(argv, env={**os.environ, "KERNEL_DIR": "/k"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.split() == [str((limits.home / "work").resolve()), "/k", "data", "False"]
    assert _labelled(docker_client, run_id) == []  # --rm: gone when it ends
    assert resources.cleanup() == []


def test_a_jobs_containers_sum_gradients_through_shared_memory_and_leave_none(tmp_path, docker_client):
    """A 2-worker train step on the docker platform: the ranks' containers share a directory on
    this host's /dev/shm (mounted into each at the same path) and sum their gradients there, as
    the local platform's processes do; every image is trained once per epoch; afterwards the
    directory and the containers are gone."""
    import re

    from minikf.engine.runner import run_scenario
    from minikf.scenario import load_scenario
    from minikf.workload import fashion_data
    from tests.paths import SAMPLE

    platform = _platform()
    fashion_data.download(tmp_path / "raw", [str(SAMPLE)], dict(fashion_data.SAMPLE_FILES))
    fashion_data.preprocess(tmp_path / "raw", tmp_path / "data")
    scenario = tmp_path / "train.yaml"
    scenario.write_text(f"""name: train-shm
steps:
  - name: train
    kind: train
    timeout: 300
    args: {{data_dir: "{tmp_path / 'data'}", workers: 2, epochs: 2}}
""")
    result = run_scenario(load_scenario(scenario), platform, tmp_path / "results")
    assert result.status == "passed", result.message
    logs = [(tmp_path / "results" / "logs" / f"train-worker-{rank}.log").read_text() for rank in (0, 1)]
    found = [re.search(r"summing gradients through shared memory \(([^)]+)\)", log) for log in logs]
    assert all(found), logs[0][-2000:]
    directories = {Path(match.group(1)) for match in found}
    assert len(directories) == 1
    directory = directories.pop()
    assert directory.parent == Path("/dev/shm") and not directory.exists()
    series = result.steps[0].series
    assert [a + b for a, b in zip(series["rank0.images"], series["rank1.images"], strict=True)] == [700, 700]
    assert _labelled(docker_client, result.run_id) == []
