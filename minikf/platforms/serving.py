"""A model served by a process on this host: what `Platform.serve_model` does by default."""

from __future__ import annotations

import requests

from minikf.platforms.base import Platform, ServeRequest
from minikf.runtime.logs import log_tail
from minikf.runtime.processes import RunResources
from minikf.runtime.waiting import http_probe, wait_until
from minikf.workload.contract import server_argv

# How long a model server may take to answer /v2/health/ready once started.
READY_TIMEOUT_S = 60.0


def serve_process(platform: Platform, request: ServeRequest, resources: RunResources) -> str:
    """Launch the model server for `request.model_dir` on 127.0.0.1:`request.port` and wait until
    /v2/health/ready answers 200 with the token; its URL."""
    # The token travels in the environment, never on the command line (visible in `ps`).
    proc = platform.launch(server_argv(request.model_dir, request.port),
                           env={"MINIKF_SERVE_TOKEN": request.token}, log_path=request.log_path,
                           resources=resources)
    url = f"http://127.0.0.1:{request.port}"
    headers = {"Authorization": f"Bearer {request.token}"}
    probe = http_probe(lambda: requests.get(f"{url}/v2/health/ready", headers=headers, timeout=2),
                       lambda r: r.status_code == 200)
    # a server forked warm is up in a fraction of a second: poll often
    wait_until(probe, what=f"model server on {url}", timeout_s=READY_TIMEOUT_S, proc=proc,
               detail=lambda: f"; log tail:\n{log_tail(request.log_path, 15)}")
    return url
