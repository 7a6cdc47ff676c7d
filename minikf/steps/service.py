"""Start a long-running process (a server) that lives until the run ends; wait for its port."""

from __future__ import annotations

import os
import socket
import sys
import time

from minikf.steps.base import StepContext, StepFailed, StepOutcome


def wait_for_port(port: int, proc, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StepFailed(f"service exited {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise StepFailed(f"service did not listen on 127.0.0.1:{port} in time")


def run(ctx: StepContext) -> StepOutcome:
    argv = [str(a) for a in ctx.arg("argv", kind=list)]
    if argv and argv[0] == "python":
        argv[0] = sys.executable
    port = int(ctx.arg("port", kind=(int, str)))
    env = {**os.environ, **{k: str(v) for k, v in ctx.arg("env", {}, dict).items()}}
    proc = ctx.resources.spawn(argv, ctx.log_path, env=env, cwd=ctx.workdir)
    wait_for_port(port, proc, time.monotonic() + float(ctx.arg("ready_timeout", 30.0, (int, float))))
    return StepOutcome(outputs={"port": port, "pid": proc.pid, "url": f"http://127.0.0.1:{port}"})
