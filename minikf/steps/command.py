"""Run a command to completion; a last stdout line that is a JSON object becomes metrics."""

from __future__ import annotations

import os
import sys

from minikf.runtime.errors import StepFailed
from minikf.runtime.logs import last_json_line, log_tail
from minikf.steps.base import StepContext, StepKind, StepOutcome, check_argv, program_problem


def run(ctx: StepContext) -> StepOutcome:
    argv = [str(a) for a in ctx.arg("argv", kind=list)]
    if argv and argv[0] == "python":
        argv[0] = sys.executable
    env = {**os.environ, **{k: str(v) for k, v in ctx.arg("env", {}, dict).items()}}
    if argv and (problem := program_problem(argv[0], env)):
        raise StepFailed(f"step {ctx.name!r}: args.argv: {problem}")
    proc = ctx.resources.spawn(argv, ctx.log_path, env=env, cwd=ctx.workdir)
    code = proc.wait()  # the engine enforces the timeout by killing the process group
    text = ctx.log_path.read_text(errors="replace")
    if code != 0:
        raise StepFailed(f"command {argv[0]} exited {code}: {log_tail(ctx.log_path)}")
    metrics = last_json_line(text)
    return StepOutcome(metrics=metrics, outputs=dict(metrics))


KIND = StepKind("command", run, check=check_argv)
