"""Start a long-running process (a server) that lives until the run ends; wait for its port."""

from __future__ import annotations

import os
import sys

from minikf.runtime.errors import StepFailed
from minikf.runtime.waiting import wait_for_port
from minikf.steps.base import StepContext, StepKind, StepOutcome, check_argv, program_problem


def run(ctx: StepContext) -> StepOutcome:
    argv = [str(a) for a in ctx.arg("argv", kind=list)]
    if argv and argv[0] == "python":
        argv[0] = sys.executable
    port = int(ctx.arg("port", kind=(int, str)))
    env = {**os.environ, **{k: str(v) for k, v in ctx.arg("env", {}, dict).items()}}
    if argv and (problem := program_problem(argv[0], env)):
        raise StepFailed(f"step {ctx.name!r}: args.argv: {problem}")
    proc = ctx.resources.spawn(argv, ctx.log_path, env=env, cwd=ctx.workdir)
    wait_for_port(port, proc, float(ctx.arg("ready_timeout", 30.0, (int, float))))
    return StepOutcome(outputs={"port": port, "pid": proc.pid, "url": f"http://127.0.0.1:{port}"})


OUTPUTS = ("port", "pid", "url")

KIND = StepKind("service", run, check=check_argv, outputs=OUTPUTS)
