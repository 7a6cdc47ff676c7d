"""Run a Kubeflow Pipelines pipeline on the platform (locally: kfp.local.SubprocessRunner)."""

from __future__ import annotations

import json
import sys

from minikf.steps.base import StepContext, StepFailed, StepOutcome, log_tail
from minikf.steps.command import last_json_line


def run(ctx: StepContext) -> StepOutcome:
    name = ctx.arg("pipeline", kind=str)
    arguments = ctx.arg("arguments", {}, dict)
    output_metric = ctx.arg("output_metric", "output", str)
    argv = [sys.executable, "-m", "minikf.pipelines.run_local", name,
            "--root", str(ctx.workdir / "pipeline-root"), "--arguments", json.dumps(arguments)]
    proc = ctx.platform.launch(argv, {}, ctx.log_path, ctx.resources)
    code = proc.wait()
    text = ctx.log_path.read_text(errors="replace")
    if code != 0:
        failed = [line for line in text.splitlines() if "finished with status" in line
                  and "FAILURE" in line]
        where = failed[-1] if failed else log_tail(ctx.log_path)
        raise StepFailed(f"pipeline {name} failed: {where} (log: {ctx.log_path})")
    result = last_json_line(text)
    return StepOutcome(metrics={output_metric: result.get("output"),
                                "seconds": result.get("seconds")})
