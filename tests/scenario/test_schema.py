"""Each kind of invalid scenario gives its own PATH:LINE: field: message."""

import subprocess
import sys
import time

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


def _alias_bomb() -> str:
    """About 300 bytes standing for 9**8 (43 million) values."""
    lines = ["a: &a [x,x,x,x,x,x,x,x,x]"]
    lines += [f"{c}: &{c} [{','.join(['*' + p] * 9)}]" for p, c in zip("abcdefg", "bcdefgh", strict=True)]
    return "\n".join(lines + ["name: bomb", "steps: [{name: s, kind: command, args: {argv: *h}}]"])


def _hostile(tmp_path, kind: str):
    path = tmp_path / f"{kind}.yaml"
    if kind == "binary":
        path.write_bytes(b"name: x\n" + bytes(range(256)) * 64)
    elif kind == "nul":
        path.write_bytes(b"name: x\nsteps: []\x00\n")
    elif kind == "huge":
        with open(path, "wb") as out:  # 15 MB, written sparse: the loader must not read it
            out.truncate(15 << 20)
    elif kind == "alias-bomb":
        path.write_text(_alias_bomb())
    elif kind == "recursive-alias":
        path.write_text("name: r\nsteps: &s [*s]\n")
    elif kind == "deep-flow":
        path.write_text("name: d\nsteps: " + "[" * 100_000 + "]" * 100_000 + "\n")
    elif kind == "deep-block":
        path.write_text("name: d\nsteps:\n" + "".join(" " * i + "- \n" for i in range(1, 200)))
    return path


@pytest.mark.parametrize(("kind", "line", "problem"), [
    ("binary", 3, "(file): not UTF-8 text (byte 136 is 0x80); a scenario is a YAML text file"),
    ("nul", 2, "(file): a NUL byte; a scenario is a YAML text file"),
    ("huge", 1, "(file): 15728640 bytes; a scenario file is at most 1048576 bytes"),
    ("alias-bomb", 6, "(yaml): expands to more than 100000 values through aliases"),
    ("recursive-alias", 2, "(yaml): an alias refers to a node it is inside of"),
    ("deep-flow", 2, "(yaml): nested more than 64 levels deep"),
    ("deep-block", 66, "(yaml): nested more than 64 levels deep"),
])
def test_hostile_files_fail_fast_with_one_line(tmp_path, kind, line, problem):
    path = _hostile(tmp_path, kind)
    started = time.monotonic()
    (only,) = problems(path)
    assert time.monotonic() - started < 1.0
    assert only.startswith(f"{path}:{line}: {problem}")


def test_anchors_and_aliases_of_a_normal_size_still_work(write_scenario):
    path = write_scenario("""name: shared
params: {argv: &argv [python, -c, "print(1)"]}
steps:
  - {name: one, kind: command, args: {argv: *argv}}
  - {name: two, kind: command, args: {argv: *argv}}
""")
    assert load_scenario(path).steps[1].args == {"argv": ["python", "-c", "print(1)"]}
