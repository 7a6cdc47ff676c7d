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


def load_pipeline(name: str):
    module, _, attr = PIPELINES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(PIPELINES))
    parser.add_argument("--root", required=True, help="kfp.local pipeline_root")
    parser.add_argument("--arguments", default="{}", help="pipeline arguments as JSON")
    args = parser.parse_args(argv)

    from kfp import local

    runner = local.SubprocessRunner(use_venv=False)
    if os.environ.get("MINIKF_KFP_RUNNER") == "docker":  # set by the docker platform
        from minikf.pipelines.runners import kfp_docker_runner

        runner = kfp_docker_runner(json.loads(args.arguments))
    local.init(runner=runner, pipeline_root=args.root)
    started = time.monotonic()
    try:
        task = load_pipeline(args.name)(**json.loads(args.arguments))
    except RuntimeError as exc:  # kfp.local: "Pipeline ... finished with status FAILURE ..."
        print(json.dumps({"status": "FAILURE", "message": str(exc),
                          "seconds": round(time.monotonic() - started, 3),
                          "tasks": task_outputs(Path(args.root))}))
        return 1
    print(json.dumps({"status": "SUCCESS", "output": _output(task),
                      "seconds": round(time.monotonic() - started, 3),
                      "tasks": task_outputs(Path(args.root)),
                      "artifacts": task_artifacts(Path(args.root), load_pipeline(args.name))}))
    return 0


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


def _output(task):
    """The pipeline's single output; None for a pipeline that returns nothing."""
    try:
        return task.output
    except AttributeError:  # kfp: no single output (none, or several by name)
        return dict(task.outputs) or None


if __name__ == "__main__":
    sys.exit(main())
