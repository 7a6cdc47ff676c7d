"""kfp.local's DockerRunner as the pipeline driver uses it on the docker platform, with the gaps
minikf fills: labels for cleanup, host network, the caller's uid, the inputs mounted, and a
task's exit status read before its container is removed."""

from __future__ import annotations

import os

from minikf.images import engine
from minikf.images.mounts import host_paths, mounts_for


def run_task_container(client, image: str, command: list[str], volumes: dict,
                       **run_args) -> int:
    """One task's container, run to its end: its output printed, its real exit status returned,
    then it is removed.

    This replaces kfp.local's `docker_task_handler.run_docker_container` (same signature).
    kfp's starts the container with auto_remove=True and, when the container is already gone
    by the time it asks for the exit status, returns 0: a task that fails fast (a component
    that raises at once) is then reported as SUCCEEDED, at random (about 1 in 15 fast exits on
    a busy 2-core machine). Here the container stays until its status is read."""
    import docker

    if ":" not in image.rsplit("/", 1)[-1]:
        image = f"{image}:latest"
    container = client.containers.run(image=image, command=command, detach=True, stdout=True,
                                      stderr=True, volumes=volumes, **run_args)
    try:
        for chunk in container.logs(stream=True, follow=True):
            print(chunk.decode(errors="replace"), end="", flush=True)
        return int(container.wait()["StatusCode"])
    except docker.errors.NotFound:  # removed by someone else: its status is unknown, not 0
        print(f"the task's container {container.short_id} was removed before its exit status "
              "was read (docker rm, minikf clean)", flush=True)
        return 1
    finally:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:  # e.g. a removal already under way elsewhere
            print(f"could not remove the task's container {container.short_id}: "
                  f"{exc.explanation}", flush=True)


def use_exit_status_fix() -> None:
    """Make kfp.local's DockerRunner run every task through `run_task_container`."""
    from kfp.local import docker_task_handler

    docker_task_handler.run_docker_container = run_task_container


def kfp_docker_runner(arguments: dict):
    """kfp.local.DockerRunner for a run: labelled, host network, caller's uid, inputs mounted.

    DockerRunner mounts the pipeline root only; the host paths named in the pipeline's
    arguments (e.g. a local mirror of the data set) are mounted read-only at the same path.
    """
    from kfp import local

    use_exit_status_fix()
    paths = [p for v in arguments.values() if isinstance(v, str) for p in host_paths([v])]
    run_id = os.environ.get("MINIKF_RUN_ID", "")
    return local.DockerRunner(
        labels={engine.RUN_LABEL: run_id, engine.OWNER_LABEL: "1",
                engine.PROCESS_LABEL: engine.this_process()}, network_mode="host",
        user=f"{os.getuid()}:{os.getgid()}", mounts=mounts_for(paths, read_only=True), init=True)
