"""The conformance bundle: every scenario's status, a readable summary, the versions."""

import json
import tarfile
from xml.etree import ElementTree as ET

import jsonschema

from minikf.engine.conformance import key_metrics, run_conformance, summary_text
from minikf.platforms.local import LocalPlatform
from minikf.results import SCHEMA_VERSION, ConformanceReport, RunResult, StepResult
from minikf.results.jsonfile import load_summary
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
    assert {f"{top}/index.html", f"{top}/junit.xml", f"{top}/good/report.html"} <= set(names)
    again = load_summary(bundle.parent / top / "summary.json")
    assert again.scenarios[0].steps[0].kind == "command" and again.platforms[0].name == "local"
    assert summary_text(again) + "\n" == text  # the same summary, from the JSON


def test_several_platforms_side_by_side(write_scenario, local, tmp_path):
    scenarios = [load_scenario(write_scenario(text, f"{i}.yaml"))
                 for i, text in enumerate((PASS, FAIL, GPU))]
    other = LocalPlatform(name="otherhost")  # this host again, under another name: a real platform
    report, bundle = run_conformance(scenarios, [local, other], tmp_path / "out")
    assert report.platform_names == ["local", "otherhost"]
    assert [(e.platform, e.scenario, e.results) for e in report.scenarios][:3] == [
        ("local", "good", "local/good"), ("local", "bad", "local/bad"),
        ("local", "needs-gpu", "local/needs-gpu")]
    assert report.count("passed", "otherhost") == 1 and report.count("passed") == 2
    with tarfile.open(bundle) as tar:
        top = tar.getnames()[0].split("/")[0]
        names = set(tar.getnames())
        text = tar.extractfile(f"{top}/summary.txt").read().decode()
        junit = ET.fromstring(tar.extractfile(f"{top}/junit.xml").read())
        index = tar.extractfile(f"{top}/index.html").read().decode()
    assert {f"{top}/local/good/report.html", f"{top}/otherhost/bad/logs/a.log"} <= names
    header = next(line for line in text.splitlines() if line.strip().startswith("scenario"))
    assert header.split() == ["scenario", "local", "otherhost"]
    good = next(line for line in text.splitlines() if line.strip().startswith("good"))
    assert good.split()[1::2] == ["passed", "passed"]
    assert "local: passed 1, failed 1, skipped 1" in text
    assert "otherhost: passed 1, failed 1, skipped 1" in text
    suites = {s.get("name"): s for s in junit.iter("testsuite")}
    assert set(suites) == {f"{p}/{s}" for p in ("local", "otherhost")
                           for s in ("good", "bad", "needs-gpu")}
    props = {p.get("name"): p.get("value") for p in suites["otherhost/bad"].iter("property")}
    assert props["platform"] == "otherhost" and props["version.minikf"]
    assert suites["otherhost/bad"].get("failures") == "1"
    assert 'href="otherhost/good/report.html"' in index
    assert "2 of 3" not in index and "1 of 3 scenarios passed" in index


def test_key_metrics_are_what_the_scenario_asserts_and_the_headline_figures(write_scenario):
    scenario = load_scenario(write_scenario(
        "name: k\nsteps:\n  - {name: a, kind: command, args: {argv: [x]}, expect: ['rate > 1']}\n"))
    result = RunResult("r", "k", "local", "passed", steps=[StepResult(
        "a", "command", "passed", metrics={"rate": 2.5, "accuracy": 0.5, "noise": 3, "nan": float("nan")})])
    assert key_metrics(scenario, result) == {"a.rate": 2.5, "a.accuracy": 0.5}


def test_a_scenario_refused_before_it_runs_is_a_failed_entry(write_scenario, local, tmp_path):
    broken = 'name: broken\nsteps:\n  - {name: a, kind: command, args: {argv: [minikf-nope]}}\n'
    scenarios = [load_scenario(write_scenario(text, f"{i}.yaml")) for i, text in enumerate((PASS, broken))]
    report, _ = run_conformance(scenarios, local, tmp_path / "out")
    entries = {s.scenario: s for s in report.scenarios}
    assert entries["good"].status == "passed" and entries["broken"].status == "failed"
    assert entries["broken"].message.endswith("steps[a].args.argv: program 'minikf-nope' not found on PATH")
