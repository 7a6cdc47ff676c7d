"""The status tree: one aggregation rule at every level, and the versioned JSON layout."""

from __future__ import annotations

import json

import jsonschema
import pytest

from minikf.results import (
    SCHEMA_VERSION,
    ConformanceEntry,
    ConformanceReport,
    RunResult,
    Status,
    StepResult,
    aggregate,
)
from minikf.results.jsonfile import load_json, to_json, write_json
from minikf.results.schema import render, schema_path
from minikf.runtime.errors import MinikfError


@pytest.mark.parametrize(("parts", "whole"), [
    ([], Status.SKIPPED),
    (["skipped", "skipped"], Status.SKIPPED),
    (["passed", "skipped"], Status.PASSED),
    (["passed", "timeout", "skipped"], Status.FAILED),
    (["failed", "passed"], Status.FAILED),
    (["passed", "interrupted", "skipped"], Status.INTERRUPTED),
    (["interrupted", "failed"], Status.FAILED),  # a failure seen is not hidden by a cut
])
def test_one_rule_for_every_level(parts, whole):
    assert aggregate(parts) is whole


def test_a_status_reads_and_writes_as_its_word():
    step = StepResult("a", "command", "timeout")
    assert step.status is Status.TIMEOUT and step.status.failed and step.status.mark == "✗"
    assert json.loads(to_json(RunResult("r", "s", "local", "passed", steps=[step])))["steps"][0][
        "status"] == "timeout"
    with pytest.raises(ValueError):
        Status("green")


@pytest.mark.parametrize("model", [RunResult, ConformanceReport])
def test_the_published_schemas_are_what_the_models_generate(model):
    """Regenerate with `python -m minikf.results.schema` after changing a model."""
    assert schema_path(model).read_text() == render(model)


def test_results_json_validates_and_another_major_does_not(tmp_path):
    schema = json.loads(schema_path(RunResult).read_text())
    run = RunResult("r1", "s", "local", Status.PASSED, steps=[StepResult("a", "command", "passed")])
    write_json(run, tmp_path / "results.json")
    document = json.loads((tmp_path / "results.json").read_text())
    jsonschema.validate(document, schema)
    assert document["schema_version"] == SCHEMA_VERSION
    for broken in ({**document, "schema_version": "2.0"}, {**document, "status": "green"},
                   {k: v for k, v in document.items() if k != "schema_version"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_an_older_unversioned_results_json_still_reads(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"run_id": "r0", "scenario": "s", "platform": "local",
                                "status": "failed", "steps": [{"name": "a", "kind": "command",
                                                               "status": "failed"}]}))
    run = load_json(path)
    assert run.status is Status.FAILED and run.steps[0].status is Status.FAILED
    assert run.schema_version == SCHEMA_VERSION  # read as this layout, written as this layout


def test_a_newer_major_layout_is_refused_with_both_versions(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"run_id": "r", "scenario": "s", "platform": "local",
                                "schema_version": "9.0"}))
    with pytest.raises(MinikfError, match=r"results schema 9.0 is newer than this minikf reads \(1\."):
        load_json(path)


def test_an_interrupted_step_is_a_junit_error_and_no_pass(tmp_path):
    """JUnit readers count a test that could not finish as an error (type says why); an
    interrupted run or bundle is not ok."""
    from xml.etree import ElementTree as ET

    from minikf.results import write_all

    steps = [StepResult("a", "command", "passed"),
             StepResult("b", "train", "interrupted", message="interrupted by SIGTERM after 2.0s"),
             StepResult("c", "serve", "skipped", message="interrupted")]
    run = RunResult("r", "s", "local", aggregate(s.status for s in steps), steps=steps)
    assert run.status is Status.INTERRUPTED and not run.ok and steps[1].status.mark == "!"
    write_all(run, tmp_path)
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert (suite.get("errors"), suite.get("failures"), suite.get("skipped")) == ("1", "0", "1")
    error = suite.findall("testcase")[1].find("error")
    assert error.get("type") == "interrupted" and "SIGTERM" in error.get("message")
    assert ">interrupted</span>" in (tmp_path / "report.html").read_text()
    report = ConformanceReport("local", "now")
    report.scenarios = [ConformanceEntry.of(run)]
    assert report.status is Status.INTERRUPTED and not report.ok
    assert SCHEMA_VERSION >= "1.1"  # the layout that added interrupted, or later
