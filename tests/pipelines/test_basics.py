"""The KFP basic sample set: the IR has the shapes claimed, errors name the step's own error.

The scenario scenarios/pipelines-basics.yaml runs every case through kfp.local and asserts
its outputs; these tests cover what the scenario cannot: the compiled structure and the
failure messages.
"""

from __future__ import annotations

import pytest
import yaml
from kfp import compiler

from minikf.engine.runner import run_scenario
from minikf.pipelines import basics
from minikf.pipelines.failures import failed_task
from minikf.pipelines.run_local import load_pipeline
from minikf.scenario import load_scenario


def _ir(pipeline, tmp_path) -> dict:
    out = tmp_path / "ir.yaml"
    compiler.Compiler().compile(pipeline, str(out))
    return yaml.safe_load(out.read_text())


def test_every_basics_pipeline_is_registered_and_compiles(tmp_path):
    for name in ("basics-sequential", "basics-parallel-join", "basics-condition",
                 "basics-exit-handler", "basics-immediate", "basics-parallel-for",
                 "basics-raises"):
        ir = _ir(load_pipeline(name), tmp_path)
        assert ir["pipelineInfo"]["name"] == name


def test_parallel_join_branches_are_independent(tmp_path):
    tasks = _ir(basics.parallel_join, tmp_path)["root"]["dag"]["tasks"]
    assert "dependentTasks" not in tasks["square"] and "dependentTasks" not in tasks["add"]
    assert sorted(tasks["add-2"]["dependentTasks"]) == ["add", "square"]


def test_condition_has_both_branches(tmp_path):
    ir = _ir(basics.condition, tmp_path)
    conditions = [t["triggerPolicy"]["condition"] for comp in ir["components"].values()
                  for t in comp.get("dag", {}).get("tasks", {}).values() if "triggerPolicy" in t]
    assert len(conditions) == 2, conditions
    assert any(c.startswith("!(") for c in conditions)  # the Else is the negation


def test_exit_task_runs_on_any_upstream_end(tmp_path):
    tasks = _ir(basics.exit_handler, tmp_path)["root"]["dag"]["tasks"]
    assert tasks["record-exit"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"


def test_parallel_for_fans_out_with_parallelism(tmp_path):
    tasks = _ir(basics.parallel_for, tmp_path)["root"]["dag"]["tasks"]
    loop = next(t for name, t in tasks.items() if name.startswith("for-loop"))
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2


def test_failed_task_finds_the_task_and_its_own_error():
    log = ("INFO - Executing task \x1b[96m'explode'\x1b[0m\n    Traceback (most recent call last):\n"
           "      File \"x.py\", line 8, in explode\n    ValueError: explode: bad input\n"
           "ERROR - Task \x1b[96m'explode'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m\n")
    assert failed_task(log) == ("explode", "ValueError: explode: bad input")
    assert failed_task("INFO - all good\n") is None


@pytest.mark.slow
def test_a_step_that_raises_shows_its_error_and_log_path(write_scenario, local, tmp_path):
    path = write_scenario("""name: raises
steps:
  - name: boom
    kind: pipeline
    args:
      pipeline: basics-raises
      arguments: {reason: "no such column 'label'"}
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert result.status == "failed"
    message = result.steps[0].message
    assert "task 'explode' raised ValueError: explode: no such column 'label'" in message
    assert str(tmp_path / "r" / "logs" / "boom.log") in message


@pytest.mark.slow
def test_wrong_output_and_unexpected_success_fail_the_step(write_scenario, local, tmp_path):
    path = write_scenario("""name: wrong
steps:
  - name: seq
    kind: pipeline
    args: {pipeline: basics-sequential, arguments: {a: 1, b: 1, c: 1}, expect_output: 3}
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert "expected output 3, got 2" in result.steps[0].message
    path = write_scenario("""name: should-fail
steps:
  - name: seq
    kind: pipeline
    args: {pipeline: basics-sequential, expect_status: FAILURE}
""", name="t.yaml")
    result = run_scenario(load_scenario(path), local, tmp_path / "r2")
    assert "succeeded, but the scenario expected it to fail" in result.steps[0].message
