"""kfp.local's DockerRunner as the pipeline driver uses it on the docker platform, with the gaps
minikf fills: labels for cleanup, host network, the caller's uid, the inputs mounted."""

from __future__ import annotations

import os

from minikf.images import engine
from minikf.images.mounts import host_paths, mounts_for


def kfp_docker_runner(arguments: dict):
    """kfp.local.DockerRunner for a run: labelled, host network, caller's uid, inputs mounted.

    DockerRunner mounts the pipeline root only; the host paths named in the pipeline's
    arguments (e.g. a local mirror of the data set) are mounted read-only at the same path.
    """
    from kfp import local

    paths = [p for v in arguments.values() if isinstance(v, str) for p in host_paths([v])]
    run_id = os.environ.get("MINIKF_RUN_ID", "")
    return local.DockerRunner(
        labels={engine.RUN_LABEL: run_id, engine.OWNER_LABEL: "1",
                engine.PROCESS_LABEL: engine.this_process()}, network_mode="host",
        user=f"{os.getuid()}:{os.getgid()}", mounts=mounts_for(paths, read_only=True), init=True)
