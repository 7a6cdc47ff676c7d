"""Run a Kubeflow Pipelines pipeline on the platform (locally: kfp.local.SubprocessRunner).

The pipeline is one of minikf's (`args.pipeline`, a name) or an annotated notebook
(`args.notebook`, a path), which Kale compiles in the driver; its YAML is kept in
`RESULTS/pipelines/STEP.yaml` and the numbers its steps log as metrics (Kale's
`pipeline-metrics`) become the step's metrics.

Optional checks, so a scenario asserts what a pipeline produced and not only that it ran:
`expect_output` (the pipeline's output, compared as JSON values), `expect_status`
(SUCCESS, or FAILURE for a run that must fail, such as an exit handler's failing body) and
`report_task` (a task whose output is a JSON object, e.g. an exit task's, merged into metrics).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from minikf.pipelines.failures import failed_task
from minikf.runtime.errors import StepFailed
from minikf.runtime.logs import last_json_line, log_tail
from minikf.steps.base import StepContext, StepKind, StepOutcome


def _failure_message(name: str, ctx: StepContext, text: str) -> str:
    found = failed_task(text)
    if found:
        task, error = found
        where = f"task {task!r} raised {error}" if error else f"task {task!r} failed"
    else:
        where = log_tail(ctx.log_path)
    return f"pipeline {name} finished with status FAILURE: {where} (log: {ctx.log_path})"


def _report(result: dict, task: str) -> dict:
    """The JSON object task `task` returned, from the runner's per-task outputs."""
    tasks = result.get("tasks") or {}
    if task not in tasks:
        raise StepFailed(f"report_task {task!r}: no such task output; tasks: {', '.join(tasks)}")
    raw = tasks[task].get("Output")
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise StepFailed(f"report_task {task!r}: output is not JSON: {raw!r}") from exc
    if not isinstance(value, dict):
        raise StepFailed(f"report_task {task!r}: expected a JSON object, got {raw!r}")
    return value


def _driver_argv(ctx: StepContext) -> tuple[str, list[str]]:
    """(what runs, for messages; the driver's command line) for a pipeline name or a notebook."""
    arguments = json.dumps(ctx.arg("arguments", {}, dict))
    if ("pipeline" in ctx.args) == ("notebook" in ctx.args):
        raise StepFailed(f"step {ctx.name!r}: give args.pipeline (a pipeline name) or "
                         "args.notebook (an annotated notebook), one of them")
    module = [sys.executable, "-m", "minikf.pipelines.run_local"]
    if "pipeline" in ctx.args:
        name = ctx.arg("pipeline", kind=str)
        return name, [*module, name, "--root", str(ctx.workdir / "pipeline-root"),
                      "--arguments", arguments]
    notebook = Path(ctx.arg("notebook", kind=str))
    if not notebook.is_file():
        raise StepFailed(f"step {ctx.name!r}: args.notebook {notebook}: no such file")
    package = ctx.results_dir / "pipelines" / f"{ctx.name}.yaml"
    package.parent.mkdir(parents=True, exist_ok=True)
    return f"from {notebook.name}", [
        *module, "--notebook", str(notebook.resolve()), "--package-out", str(package),
        "--root", str(ctx.workdir / f"{ctx.name}-pipeline-root"), "--arguments", arguments]


def run(ctx: StepContext) -> StepOutcome:
    output_metric = ctx.arg("output_metric", "output", str)
    expect_status = ctx.arg("expect_status", "SUCCESS", str).upper()
    if expect_status not in ("SUCCESS", "FAILURE"):
        raise StepFailed(f"step {ctx.name!r}: args.expect_status should be SUCCESS or FAILURE, "
                         f"got {expect_status!r}")
    name, argv = _driver_argv(ctx)
    # The driver runs where the platform says (docker: on this host, tasks in containers).
    proc = ctx.platform.launch_driver(argv, {}, ctx.log_path, ctx.resources)
    code = proc.wait()
    text = ctx.log_path.read_text(errors="replace")
    result = last_json_line(text)
    if result.get("status") == "INVALID":  # the notebook did not compile: Kale's one line
        raise StepFailed(f"pipeline {name}: {result.get('message')}")
    status = "SUCCESS" if code == 0 else "FAILURE"
    if status != expect_status:
        if status == "FAILURE":
            raise StepFailed(_failure_message(name, ctx, text))
        raise StepFailed(f"pipeline {name} succeeded, but the scenario expected it to fail "
                         f"(log: {ctx.log_path})")
    output = result.get("output")
    metrics = {output_metric: output, "seconds": result.get("seconds"),
               "pipeline_failed": int(status == "FAILURE"),
               "tasks_run": len(result.get("tasks") or {}), **(result.get("metrics") or {})}
    if "expect_output" in ctx.args and output != ctx.args["expect_output"]:
        raise StepFailed(f"pipeline {name}: expected output {ctx.args['expect_output']!r}, "
                         f"got {output!r} (log: {ctx.log_path})")
    if "report_task" in ctx.args:
        metrics.update(_report(result, ctx.arg("report_task", kind=str)))
    outputs = {"status": status, "output": output, "artifacts": _artifacts(result)}
    if "notebook" in ctx.args:
        outputs["package_file"] = argv[argv.index("--package-out") + 1]
    return StepOutcome(metrics=metrics, outputs=outputs)


_KINDS = {"system.Dataset": "dataset", "system.Model": "model"}


def _artifacts(result: dict) -> list[dict]:
    """The run's KFP artifacts as typed files for the lineage store (minikf/metadata)."""
    return [{"kind": _KINDS.get(a.get("type", ""), "artifact"), "name": f"{a['task']}/{a['name']}",
             "path": a["uri"]} for a in result.get("artifacts") or [] if a.get("uri")]


KIND = StepKind("pipeline", run)
