"""Serve a model with KServe's ModelServer (V1 and V2) behind the run's token; the platform says
where (a process here, a container, an InferenceService) and returns a local URL."""

from __future__ import annotations

import os
from pathlib import Path

from minikf.platforms.base import ServeRequest
from minikf.runtime import running
from minikf.runtime.errors import StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome
from minikf.workload.contract import SERVER_MODULE
from minikf.workload.served_model import default_name, describe_model_path


def run(ctx: StepContext) -> StepOutcome:
    model_dir = Path(str(ctx.arg("model_dir", kind=(str, Path))))
    problem = describe_model_path(model_dir)
    if problem:
        raise StepFailed(f"step {ctx.name!r}: {problem}")
    request = ServeRequest(name=ctx.unique_name(), model_dir=model_dir,
                           token=str(ctx.arg("token", kind=str)),
                           port=int(ctx.arg("port", kind=(int, str))), log_path=ctx.log_path,
                           timeout_s=ctx.timeout)
    url = ctx.platform.serve_model(request, ctx.resources, status=ctx.status)
    name = default_name(model_dir)  # the name the server gives the model in its URLs
    # Listed as serving (`minikf ui`) while this run holds it: the run's process is its owner.
    entry = running.register("model", os.getpid(), url, model=name, model_dir=str(model_dir.resolve()),
                             platform=ctx.platform.name, run_id=ctx.resources.run_id, step=ctx.name)
    ctx.resources.on_cleanup(lambda: running.unregister(entry))
    return StepOutcome(outputs={"url": url, "model": name})


OUTPUTS = ("url", "model")

KIND = StepKind("serve", run, warm_modules=(SERVER_MODULE,), outputs=OUTPUTS)
