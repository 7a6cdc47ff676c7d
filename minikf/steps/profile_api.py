"""Start the profiles API (runs and artifacts per user, token auth) for the rest of the run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from minikf.profiles.store import HOME_ENV
from minikf.runtime.logs import log_tail
from minikf.runtime.waiting import wait_for_port
from minikf.steps.base import StepContext, StepKind, StepOutcome


def run(ctx: StepContext) -> StepOutcome:
    home = Path(str(ctx.arg("home", kind=str)))
    port = int(ctx.arg("port", kind=(int, str)))
    argv = [sys.executable, "-m", "minikf.profiles.api", "--port", str(port)]
    proc = ctx.resources.spawn(argv, ctx.log_path, env={**os.environ, HOME_ENV: str(home)})
    wait_for_port(port, proc, 30.0, what="profiles API",
                  detail=lambda: f"; log tail:\n{log_tail(ctx.log_path)}")
    return StepOutcome(outputs={"url": f"http://127.0.0.1:{port}", "pid": proc.pid})


OUTPUTS = ("url", "pid")

KIND = StepKind("profile_api", run, outputs=OUTPUTS)
