"""Each kind of invalid scenario gives its own PATH:LINE: field: message."""

import subprocess
import sys

import pytest

from minikf.runtime.errors import ScenarioInvalid
from minikf.scenario import load_scenario
from tests.paths import SCENARIOS

VALID = """name: ok
steps:
  - name: one
    kind: command
    args: {argv: [python, -c, "print(1)"]}
"""


def problems(path):
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(path)
    return info.value.problems


def test_valid_file_loads(write_scenario):
    scenario = load_scenario(write_scenario(VALID))
    assert scenario.name == "ok" and scenario.steps[0].kind == "command"


def test_yaml_syntax_error_names_line(write_scenario):
    path = write_scenario("name: x\nsteps:\n  - name: [unclosed\n")
    (only,) = problems(path)
    assert only.startswith(f"{path}:") and "(yaml)" in only


def test_missing_field(write_scenario):
    path = write_scenario("name: x\n")
    (only,) = problems(path)
    assert only == f"{path}:1: steps: Field required"


def test_unknown_field_names_its_line(write_scenario):
    path = write_scenario(VALID + "    colour: red\n")
    (only,) = problems(path)
    assert only == f"{path}:6: steps[one].colour: unknown field 'colour'"


def test_wrong_type(write_scenario):
    path = write_scenario(VALID + "    timeout: soon\n")
    (only,) = problems(path)
    assert only.startswith(f"{path}:6: steps[one].timeout:") and "number" in only


def test_unknown_step_kind(write_scenario):
    path = write_scenario(VALID.replace("kind: command", "kind: teleport"))
    (only,) = problems(path)
    assert only.startswith(f"{path}:4: steps[one].kind: unknown step kind 'teleport'")


def test_unparsable_expectation(write_scenario):
    path = write_scenario(VALID + "    expect: ['accuracy is great']\n")
    (only,) = problems(path)
    assert f"{path}:6: steps[one].expect" in only and "cannot parse expectation" in only


def test_every_problem_is_reported(write_scenario):
    path = write_scenario(VALID.replace("kind: command", "kind: nope") + "    timeout: -1\n")
    assert len(problems(path)) == 2


def test_cli_validate_exits_2_without_traceback(write_scenario):
    bad = write_scenario("name: x\n", "bad.yaml")
    good = write_scenario(VALID, "good.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "minikf.cli", "scenarios", "validate", str(good), str(bad)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert f"{bad}:1: steps: Field required" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bundled_scenarios_are_valid():

    from minikf.scenario import validate_paths

    files = sorted(SCENARIOS.glob("*.yaml"))
    assert files and validate_paths(files) == []
