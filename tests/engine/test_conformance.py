"""The conformance bundle: every scenario's status, a readable summary, the versions."""

import json
import tarfile

import jsonschema

from minikf.engine.conformance import run_conformance
from minikf.results import SCHEMA_VERSION, ConformanceReport, RunResult
from minikf.results.schema import schema_path
from minikf.scenario import load_scenario

PASS = 'name: good\nsteps:\n  - {name: a, kind: command, args: {argv: [python, -c, "pass"]}}\n'
FAIL = 'name: bad\nsteps:\n  - {name: a, kind: command, args: {argv: [python, -c, "1/0"]}}\n'
GPU = 'name: needs-gpu\nrequires: [gpu]\nsteps:\n  - {name: a, kind: command, args: {argv: [x]}}\n'


def test_bundle_holds_summary_and_each_result(write_scenario, local, tmp_path):
    scenarios = [load_scenario(write_scenario(text, f"{i}.yaml"))
                 for i, text in enumerate((PASS, FAIL, GPU))]
    report, bundle = run_conformance(scenarios, local, tmp_path / "out", jobs=2)
    assert not report.ok
    assert report.status == "failed"
    assert {s.scenario: s.status for s in report.scenarios} == {
        "good": "passed", "bad": "failed", "needs-gpu": "skipped"}
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        assert names[0] == f"{top}/summary.txt"
        summary = json.load(tar.extractfile(f"{top}/summary.json"))
        good = json.load(tar.extractfile(f"{top}/good/results.json"))
        text = tar.extractfile(f"{top}/summary.txt").read().decode()
        assert f"{top}/bad/logs/a.log" in names
        assert f"{top}/good/results.json" in names
    assert summary["versions"]["minikf"]
    assert summary["platform_info"]["name"] == "local"
    assert "passed 1, failed 1, skipped 1" in text
    assert "lacks gpu" in text
    assert "results schema 1." in text.splitlines()[0]
    # what a vendor's tooling would check: both documents against the published schemas
    jsonschema.validate(summary, json.loads(schema_path(ConformanceReport).read_text()))
    jsonschema.validate(good, json.loads(schema_path(RunResult).read_text()))
    assert summary["schema_version"] == good["schema_version"] == SCHEMA_VERSION


def test_a_scenario_refused_before_it_runs_is_a_failed_entry(write_scenario, local, tmp_path):
    broken = 'name: broken\nsteps:\n  - {name: a, kind: command, args: {argv: [minikf-nope]}}\n'
    scenarios = [load_scenario(write_scenario(text, f"{i}.yaml")) for i, text in enumerate((PASS, broken))]
    report, _ = run_conformance(scenarios, local, tmp_path / "out")
    entries = {s.scenario: s for s in report.scenarios}
    assert entries["good"].status == "passed" and entries["broken"].status == "failed"
    assert entries["broken"].message.endswith("steps[a].args.argv: program 'minikf-nope' not found on PATH")
