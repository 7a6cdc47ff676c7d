"""Start a long-running process (a server) that lives until the run ends; wait for its port."""

from __future__ import annotations

import os
import sys

from minikf.runtime.waiting import wait_for_port
from minikf.steps.base import StepContext, StepKind, StepOutcome


def run(ctx: StepContext) -> StepOutcome:
    argv = [str(a) for a in ctx.arg("argv", kind=list)]
    if argv and argv[0] == "python":
        argv[0] = sys.executable
    port = int(ctx.arg("port", kind=(int, str)))
    env = {**os.environ, **{k: str(v) for k, v in ctx.arg("env", {}, dict).items()}}
    proc = ctx.resources.spawn(argv, ctx.log_path, env=env, cwd=ctx.workdir)
    wait_for_port(port, proc, float(ctx.arg("ready_timeout", 30.0, (int, float))))
    return StepOutcome(outputs={"port": port, "pid": proc.pid, "url": f"http://127.0.0.1:{port}"})


KIND = StepKind("service", run)
