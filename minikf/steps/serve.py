"""Serve a model with KServe's ModelServer (V1 and V2) behind the run's token; the platform says
where (a process here, a container, an InferenceService) and returns a local URL."""

from __future__ import annotations

from pathlib import Path

from minikf.platforms.base import ServeRequest
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
    # the name the server gives the model in its URLs
    return StepOutcome(outputs={"url": url, "model": default_name(model_dir)})


OUTPUTS = ("url", "model")

KIND = StepKind("serve", run, warm_modules=(SERVER_MODULE,), outputs=OUTPUTS)
