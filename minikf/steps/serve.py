"""Start the KServe model server for a trained model; ready when /v2/health/ready says so."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import requests

from minikf.steps.base import StepContext, StepFailed, StepOutcome, log_tail

MODEL_NAME = "fashion-mnist"
READY_TIMEOUT = 60.0


SERVER_MODULE = "minikf.workload.server"
WARM_MODULES = (SERVER_MODULE,)  # imported ahead where the platform can (steps/__init__.py)


def run(ctx: StepContext) -> StepOutcome:
    model_dir = Path(str(ctx.arg("model_dir", kind=(str, Path))))
    port = int(ctx.arg("port", kind=(int, str)))
    token = str(ctx.arg("token", kind=str))
    if not (model_dir / "model.pt").is_file():
        raise StepFailed(f"step {ctx.name!r}: no model at {model_dir} (expected model.pt)")
    if hasattr(ctx.platform, "serve_model"):  # a cluster: an InferenceService
        url = ctx.platform.serve_model(ctx.unique_name(), model_dir, token, ctx.resources,
                                       timeout_s=ctx.timeout, status=ctx.status)
        return StepOutcome(outputs={"url": url, "model": MODEL_NAME})
    argv = [sys.executable, "-m", SERVER_MODULE, "--model-dir", str(model_dir),
            "--port", str(port)]
    # The token travels in the environment, never on the command line (visible in `ps`).
    proc = ctx.platform.launch(argv, env={"MINIKF_SERVE_TOKEN": token},
                               log_path=ctx.log_path, resources=ctx.resources)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StepFailed(
                f"model server exited {proc.returncode} before it was ready; log tail:\n"
                f"{log_tail(ctx.log_path, 15)}"
            )
        try:
            resp = requests.get(f"{url}/v2/health/ready", headers=headers, timeout=2)
            if resp.status_code == 200:
                return StepOutcome(outputs={"url": url, "model": MODEL_NAME})
            last = f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.05)  # a server forked warm is up in a fraction of a second
    raise StepFailed(
        f"model server on {url} not ready after {READY_TIMEOUT:.0f}s ({last}); log tail:\n"
        f"{log_tail(ctx.log_path, 15)}"
    )
