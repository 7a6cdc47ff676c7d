"""The real model server as a subprocess for tests: started, waited for, always stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from minikf.runtime.ports import free_port

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def running_server(model: Path, log: Path, *args: str, cli: bool = False,
                   token: str = TOKEN) -> Iterator[dict]:
    """`python -m minikf.workload.server` (or, with cli, `minikf serve`) on a free port,
    ready (/v2/health/ready) before it is yielded, stopped on exit whatever happened."""
    port = free_port()
    if cli:
        argv = [sys.executable, "-m", "minikf.cli", "serve", "--model", str(model), "--port", str(port)]
    else:
        argv = [sys.executable, "-m", "minikf.workload.server", "--model-dir", str(model),
                "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*argv, *args], env={**os.environ, "MINIKF_SERVE_TOKEN": token},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"server not ready in 60s:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"{url}/v2/health/ready", headers={"Authorization": f"Bearer {token}"},
                                timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        yield {"url": url, "host_port": f"127.0.0.1:{port}", "port": port, "proc": proc, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
