"""Start the profiles API (runs and artifacts per user, token auth) for the rest of the run."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from minikf.profiles.store import HOME_ENV
from minikf.steps.base import StepContext, StepFailed, StepOutcome, log_tail
from minikf.steps.service import wait_for_port


def run(ctx: StepContext) -> StepOutcome:
    home = Path(str(ctx.arg("home", kind=str)))
    port = int(ctx.arg("port", kind=(int, str)))
    argv = [sys.executable, "-m", "minikf.profiles.api", "--port", str(port)]
    proc = ctx.resources.spawn(argv, ctx.log_path, env={**os.environ, HOME_ENV: str(home)})
    try:
        wait_for_port(port, proc, time.monotonic() + 30)
    except StepFailed as exc:
        raise StepFailed(f"{exc}; log tail:\n{log_tail(ctx.log_path)}") from None
    return StepOutcome(outputs={"url": f"http://127.0.0.1:{port}", "pid": proc.pid})
