"""Run a pipeline with kfp.local.SubprocessRunner in this process, print its outputs as JSON.

The `pipeline` step runs this as a child process because kfp.local.init is a process-wide
singleton: one run's settings must not leak into another's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

from minikf.pipelines import PIPELINES
from minikf.runtime.errors import MinikfError


def load_pipeline(name: str):
    module, _, attr = PIPELINES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", nargs="?", choices=sorted(PIPELINES))
    parser.add_argument("--notebook", type=Path, help="an annotated notebook, compiled with Kale")
    parser.add_argument("--package-out", type=Path, help="where the compiled notebook's YAML goes")
    parser.add_argument("--root", required=True, help="kfp.local pipeline_root")
    parser.add_argument("--arguments", default="{}", help="pipeline arguments as JSON")
    args = parser.parse_args(argv)
    if (args.name is None) == (args.notebook is None):
        parser.error("give a pipeline NAME or --notebook NB (one of them)")

    from kfp import local

    runner = local.SubprocessRunner(use_venv=False)
    on_docker = os.environ.get("MINIKF_KFP_RUNNER") == "docker"  # set by the docker platform
    if on_docker:
        from minikf.pipelines.runners import kfp_docker_runner

        runner = kfp_docker_runner(json.loads(args.arguments))
    if args.notebook is not None:
        try:
            pipeline = notebook_pipeline(args.notebook, args.package_out, Path(args.root),
                                         on_host=not on_docker)
        except MinikfError as exc:
            print(json.dumps({"status": "INVALID", "message": exc.message}))
            return 2
    else:
        pipeline = load_pipeline(args.name)
    local.init(runner=runner, pipeline_root=args.root)
    started = time.monotonic()
    try:
        task = pipeline(**json.loads(args.arguments))
    except RuntimeError as exc:  # kfp.local: "Pipeline ... finished with status FAILURE ..."
        print(json.dumps({"status": "FAILURE", "message": str(exc),
                          "seconds": round(time.monotonic() - started, 3),
                          "tasks": task_outputs(Path(args.root))}))
        return 1
    print(json.dumps({"status": "SUCCESS", "output": _output(task),
                      "seconds": round(time.monotonic() - started, 3),
                      "tasks": task_outputs(Path(args.root)),
                      "artifacts": task_artifacts(Path(args.root), pipeline),
                      "metrics": task_metrics(Path(args.root))}))
    return 0


def notebook_pipeline(notebook: Path, package_out: Path | None, root: Path, on_host: bool):
    """Kale compiles the notebook to IR YAML; the pipeline to run is that YAML, loaded by kfp.
    When tasks are processes on this host, Kale's /tmp files go to a private folder of the run."""
    from kfp import components

    from minikf.pipelines.kale import compile_notebook, for_host_run

    root.mkdir(parents=True, exist_ok=True)
    package = package_out or root.parent / "notebook-pipeline.yaml"
    compiled = compile_notebook(notebook, package)
    print(f"compiled {notebook} with Kale: pipeline {compiled.pipeline_name}, steps "
          f"{', '.join(compiled.steps)}, metrics {', '.join(compiled.metrics) or 'none'} -> {package}",
          flush=True)
    if on_host:
        private = root.with_name(f"{root.name}-kale")
        package = for_host_run(package, private, private / "pipeline-on-host.yaml")
    return components.load_component_from_file(str(package))


def _newest_run(root: Path) -> Path | None:
    runs = [d for d in root.iterdir() if d.is_dir()] if root.is_dir() else []
    return max(runs, key=lambda d: d.stat().st_mtime) if runs else None


def task_artifacts(root: Path, pipeline) -> list[dict]:
    """The output artifacts of the top-level tasks in the newest run, with their KFP type
    (system.Dataset, system.Model, ...) from the pipeline spec, for the lineage store."""
    newest = _newest_run(root)
    if newest is None:
        return []
    spec = pipeline.pipeline_spec
    found = []
    for path in sorted(newest.glob("*/executor_output.json")):
        task = path.parent.name
        if task not in spec.root.dag.tasks:
            continue
        component = spec.components[spec.root.dag.tasks[task].component_ref.name]
        types = {name: a.artifact_type.schema_title
                 for name, a in component.output_definitions.artifacts.items()}
        outputs = json.loads(path.read_text()).get("artifacts", {})
        for name, entry in outputs.items():
            for artifact in entry.get("artifacts", []):
                found.append({"task": task, "name": name, "type": types.get(name, ""),
                              "uri": artifact.get("uri", "")})
    return found


def task_outputs(root: Path) -> dict[str, dict]:
    """Every task's parameter outputs in the newest run under the pipeline root, by task path
    (e.g. `record-exit`, `for-loop-1-iteration-0/square`): the exit task's too, which a
    pipeline cannot return."""
    newest = _newest_run(root)
    if newest is None:
        return {}
    found = {}
    for path in sorted(newest.rglob("executor_output.json")):
        try:
            values = json.loads(path.read_text()).get("parameterValues", {})
        except (OSError, json.JSONDecodeError):
            continue
        found[str(path.parent.relative_to(newest))] = values
    return found


def task_metrics(root: Path) -> dict[str, float]:
    """The numbers every task logged to a Metrics artifact in the newest run (Kale's
    pipeline-metrics, `Metrics.log_metric`), by name with '-' read as '_'."""
    newest = _newest_run(root)
    found: dict[str, float] = {}
    for path in sorted(newest.rglob("executor_output.json")) if newest else []:
        try:
            outputs = json.loads(path.read_text()).get("artifacts", {})
        except (OSError, json.JSONDecodeError):
            continue
        for entry in outputs.values():
            for artifact in entry.get("artifacts", []):
                for name, value in (artifact.get("metadata") or {}).items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        found[name.replace("-", "_")] = value
    return found


def _output(task):
    """The pipeline's single output; None for a pipeline that returns nothing."""
    try:
        return task.output
    except AttributeError:  # kfp: no single output (none, or several by name)
        return dict(task.outputs) or None


if __name__ == "__main__":
    sys.exit(main())
