"""Local and docker hand a pipeline task the same things: the task contract of
minikf/pipelines/contract.py, run for real on both (kfp.local's SubprocessRunner here, its
DockerRunner with minikf's task containers there) and compared task by task.

Skipped, with the reason, where no Docker Engine answers or the images are not built.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from minikf.images import engine
from minikf.pipelines.contract import ENV_VALUE, EXIT_MODES
from minikf.runtime.logs import last_json_line
from minikf.runtime.processes import RunResources

REASON = engine.available()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(REASON is not None, reason=f"no Docker Engine: {REASON}")]


@pytest.fixture(scope="module")
def platforms():
    from minikf.platforms.docker import DockerPlatform
    from minikf.platforms.local import LocalPlatform
    from minikf.runtime.errors import MinikfError

    docker = DockerPlatform()
    try:
        docker.check_images()
    except MinikfError as exc:
        pytest.skip(f"images not usable: {exc.message}")
    yield {"local": LocalPlatform(warm_start=False), "docker": docker}
    docker.close()


@pytest.fixture
def workdir():
    """A run-like work dir (minikf-<id>-...): the docker platform mounts such a dir whole."""
    run_id = uuid.uuid4().hex[:12]
    path = Path(tempfile.mkdtemp(prefix=f"minikf-{run_id}-"))
    yield run_id, path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _drive(platform, run_id: str, workdir: Path, pipeline: str, arguments: dict) -> tuple[int, dict]:
    """Run one pipeline through the platform's driver, as the pipeline step does."""
    resources = RunResources(run_id=run_id)
    log = workdir / f"{platform.name}-{pipeline}-{uuid.uuid4().hex[:4]}.log"
    argv = [sys.executable, "-m", "minikf.pipelines.run_local", pipeline,
            "--root", str(workdir / f"root-{log.stem}"), "--arguments", json.dumps(arguments)]
    try:
        code = platform.launch_driver(argv, {}, log, resources).wait(timeout=300)
        return code, last_json_line(log.read_text(errors="replace"))
    finally:
        assert resources.cleanup() == []


def test_a_task_is_handed_the_same_on_local_and_docker(platforms, workdir):
    run_id, path = workdir
    host_file = path / "input.txt"
    host_file.write_text("read by the task\n")
    seen = {}
    for name, platform in platforms.items():
        code, result = _drive(platform, run_id, path, "contract-probe", {"host_file": str(host_file)})
        assert code == 0 and result["status"] == "SUCCESS", (name, result)
        seen[name] = (result["output"], result["tasks"]["consume"]["Output"])
    output, consumed = seen["local"]
    assert output == {
        "arguments": {"text": "hello", "count": 3, "ratio": 0.5, "flag": True, "items": [1, 2, 3],
                      "config": {"key": "value", "nested": [1]}},
        "types": {"text": "str", "count": "int", "ratio": "float", "flag": "bool", "items": "list",
                  "config": "dict"},
        "env": ENV_VALUE, "host_file_sha256": hashlib.sha256(host_file.read_bytes()).hexdigest(),
        "data_owner": [os.getuid(), os.getgid()], "workload_importable": True}
    assert consumed == "hello:3"
    assert seen["docker"] == seen["local"]


@pytest.mark.parametrize("mode", EXIT_MODES)
def test_a_task_exit_decides_its_state_the_same_on_local_and_docker(platforms, workdir, mode):
    run_id, path = workdir
    expected = "SUCCESS" if mode == "return" else "FAILURE"
    for name, platform in platforms.items():
        code, result = _drive(platform, run_id, path, "contract-exit", {"mode": mode})
        assert result["status"] == expected, (name, mode, result)
        assert (code == 0) == (expected == "SUCCESS")


class _SlowClient:
    """The real Docker client, slow to hand back a started container, as a busy machine is:
    the container has exited (and, when started with auto_remove, is gone) before the runner
    asks for its output and status. Only the delay is made up; the engine is real."""

    def __init__(self, client) -> None:
        self._client = client
        self.containers = self
        self.images = client.images

    def run(self, **kwargs):
        import time

        container = self._client.containers.run(**kwargs)
        time.sleep(1.5)
        return container


def _owned(label: str) -> dict[str, str]:
    """A task container's labels as a live run's are (kfp_docker_runner's): owned by this
    process, so a `minikf clean` that another test runs meanwhile leaves it alone rather than
    removing it as an orphan (which made the exit status unreadable: a flaky 1 for a 0)."""
    return {engine.RUN_LABEL: label, engine.OWNER_LABEL: "1",
            engine.PROCESS_LABEL: engine.this_process()}


def test_the_docker_driver_reads_each_task_status_before_removing_its_container(platforms,
                                                                                 monkeypatch):
    """kfp.local's own task runner starts containers with auto_remove and reports a status it
    could not read as 0: with a slow client, every fast failure would be a success. The driver
    runs tasks through minikf's, which reads each one's own code and leaves nothing behind."""
    from kfp.local import docker_task_handler

    from minikf.pipelines.runners import kfp_docker_runner, run_task_container

    # restored after the test: the driver sets it in its own process only
    monkeypatch.setattr(docker_task_handler, "run_docker_container",
                        docker_task_handler.run_docker_container)
    kfp_docker_runner({})
    assert docker_task_handler.run_docker_container is run_task_container
    cli = engine.client()
    label = f"parity-{uuid.uuid4().hex[:6]}"
    try:
        codes = [docker_task_handler.run_docker_container(
            client=_SlowClient(cli), image="minikf/runtime", command=["sh", "-c", f"exit {code}"],
            volumes={}, labels=_owned(label), init=True) for code in (3, 0, 4)]
        assert codes == [3, 0, 4]
        assert cli.containers.list(all=True, filters={"label": f"{engine.RUN_LABEL}={label}"}) == []
    finally:
        from minikf.platforms.docker import remove_labelled

        remove_labelled(cli, label)
        cli.close()


def test_a_task_container_removed_while_it_runs_is_a_failure(platforms):
    """Someone else's `docker rm` (or `minikf clean`) mid-task: the status is unknown, which is
    a failure, never the success kfp's own runner reports."""
    import threading
    import time

    from minikf.pipelines.runners import run_task_container

    cli = engine.client()
    label = f"parity-{uuid.uuid4().hex[:6]}"

    def remove_soon() -> None:
        for _ in range(100):
            found = cli.containers.list(filters={"label": f"{engine.RUN_LABEL}={label}"})
            if found:
                found[0].remove(force=True)
                return
            time.sleep(0.1)

    remover = threading.Thread(target=remove_soon)
    remover.start()
    try:
        code = run_task_container(cli, "minikf/runtime", ["sleep", "60"], {},
                                  labels=_owned(label), init=True)
        remover.join()
        assert code != 0
    finally:
        from minikf.platforms.docker import remove_labelled

        remove_labelled(cli, label)
        cli.close()
