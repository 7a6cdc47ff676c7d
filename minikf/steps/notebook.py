"""Execute a notebook end to end (nbclient); the notebook writes out_dir/metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

from minikf.notebooks.execute import execute_notebook, stop_kernel
from minikf.profiles.store import private_dir
from minikf.runtime.errors import MinikfError, StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome


def run(ctx: StepContext) -> StepOutcome:
    path = Path(str(ctx.arg("notebook", kind=str)))
    if not path.is_file():
        raise StepFailed(f"step {ctx.name!r}: args.notebook: no notebook at {path}")
    params = dict(ctx.arg("parameters", {}, dict))
    cwd = private_dir(ctx.workdir / f"notebook-{ctx.name}")
    out_dir = cwd / "out"
    params.setdefault("out_dir", str(out_dir))
    executed = private_dir(ctx.results_dir / "notebooks") / path.name
    try:
        # the engine's step timeout is the one that fires; stop_kernel cleans up after it
        # where the platform runs workloads (in a container on docker), under the user's quota
        # when run as a user (minikf profiles run); it reaches the host paths among the parameters
        execute_notebook(path, params, cwd, executed, ctx.timeout + 60,
                         on_client=lambda c: ctx.resources.on_cleanup(lambda: stop_kernel(c)),
                         kernel_argv=lambda command: ctx.platform.command_argv(command, ctx.resources),
                         paths=[Path(v) for v in params.values()
                                if isinstance(v, str) and v.startswith("/")],
                         run_id=ctx.resources.run_id)
    except MinikfError as exc:
        raise StepFailed(f"step {ctx.name!r}: {exc.message} (executed notebook: {executed})") from None
    metrics_file = Path(params["out_dir"]) / "metrics.json"
    if not metrics_file.is_file():
        raise StepFailed(f"step {ctx.name!r}: the notebook wrote no {metrics_file}")
    values = json.loads(metrics_file.read_text())
    metrics = {k: v for k, v in values.items() if isinstance(v, (int, float))}
    outputs = {**values, "executed_notebook": str(executed)}
    return StepOutcome(metrics=metrics, outputs=outputs)


KIND = StepKind("notebook", run)
