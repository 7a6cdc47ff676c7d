"""Start a user's Jupyter server for the rest of the run (stopped with it)."""

from __future__ import annotations

from pathlib import Path

from minikf.notebooks.server import start_notebook
from minikf.profiles.store import load_profile
from minikf.runtime.errors import MinikfError, StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome


def run(ctx: StepContext) -> StepOutcome:
    home = Path(str(ctx.arg("home", kind=str)))
    user = str(ctx.arg("user", kind=str))
    port = int(ctx.arg("port", 0, (int, str))) or None
    try:
        server, _token = start_notebook(load_profile(user, home), port, resources=ctx.resources,
                                        platform=ctx.platform)
    except MinikfError as exc:
        raise StepFailed(f"step {ctx.name!r}: {exc.message}") from None
    return StepOutcome(outputs={"url": server.url, "pid": server.pid, "user": user,
                                "token_file": server.token_file})


OUTPUTS = ("url", "pid", "user", "token_file")

KIND = StepKind("notebook_server", run, outputs=OUTPUTS)
