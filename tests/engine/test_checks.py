"""What validate and run check before any step: references, parameters, programs, outputs."""

from __future__ import annotations

import sys

import pytest

from minikf.engine import checks
from minikf.engine.runner import run_scenario
from minikf.plugins import STEP_KINDS
from minikf.runtime.errors import MinikfError, ScenarioInvalid
from minikf.scenario import load_scenario
from tests.paths import SCENARIOS

HEAD = """name: refs
params: {epochs: 1}
steps:
  - name: data
    kind: download
    args: {mirrors: x, sample: true}
"""


def problems_of(write_scenario, text: str) -> list[str]:
    return checks.problems(load_scenario(write_scenario(text)))


@pytest.mark.parametrize(("ref", "problem"), [
    ("${steps.data.outputs.raw_dir}", None),
    ("${steps.data.outputs.files}", None),  # a metric is an output too
    ("${params.epochs}", None),
    ("${ports.web}", None),
    ("${secrets.token}", None),
    ("${workdir}/x", None),
    ("${scenario_dir}", None),
    ("${steps.data.outputs.model_dir}", "step 'data' (download) has no output 'model_dir'"),
    ("${steps.nope.outputs.x}", "no earlier step 'nope'"),
    ("${steps.use.outputs.data_dir}", "no earlier step 'use'"),
    ("${steps.data.raw_dir}", "expected ${steps.NAME.outputs.KEY}"),
    ("${params.epoch}", "not a parameter of this scenario (it has: epochs)"),
    ("${workdir.x}", "unknown reference; known: ${params.NAME}"),
    ("${env.HOME}", "unknown reference"),
])
def test_each_reference(write_scenario, ref, problem):
    path = write_scenario(HEAD + f"""  - name: use
    kind: preprocess
    args: {{raw_dir: "{ref}"}}
""")
    found = problems_of(write_scenario, path.read_text())
    if problem is None:
        assert found == []
    else:
        (only,) = found
        assert only.startswith(f"{path}:9: steps[use].args.raw_dir: {ref}: {problem}")


def test_a_kind_that_cannot_know_its_outputs_is_checked_by_step_only(write_scenario):
    found = problems_of(write_scenario, """name: c
steps:
  - {name: first, kind: command, args: {argv: [python, -c, "print(1)"]}}
  - name: second
    kind: command
    args: {argv: [python, -c, "${steps.first.outputs.anything}", "${steps.frist.outputs.n}"]}
""")
    assert [p.split(": ", 1)[1] for p in found] == [
        "steps[second].args.argv[3]: ${steps.frist.outputs.n}: no earlier step 'frist'"]


def test_patterns_in_declared_outputs(write_scenario):
    text = """name: t
steps:
  - {name: tune, kind: tune, args: {data_dir: x, spec: {}}}
  - {name: use, kind: preprocess, args: {raw_dir: "${steps.tune.outputs.%s}"}}
"""
    assert problems_of(write_scenario, text % "best_accuracy") == []
    (only,) = problems_of(write_scenario, text % "accuracy")
    assert "step 'tune' (tune) has no output 'accuracy'" in only


def test_parameters_cannot_use_step_outputs(write_scenario):
    path = write_scenario(HEAD.replace("{epochs: 1}", '{epochs: "${steps.data.outputs.files}"}'))
    assert checks.problems(load_scenario(path)) == [
        f"{path}:2: params.epochs: ${{steps.data.outputs.files}}: parameters cannot use step "
        "outputs"]


@pytest.mark.parametrize(("argv", "env", "problem"), [
    ("[python, -c, pass]", "{}", None),
    ("[sh, -c, 'true']", "{}", None),
    (f"[{sys.executable}]", "{}", None),
    ("[minikf-nope]", "{}", "program 'minikf-nope' not found on PATH"),
    ("[/nonexistent/tool]", "{}", "program '/nonexistent/tool' does not exist or is not executable"),
    ("[./made-by-an-earlier-step.sh]", "{}", None),  # relative to the work dir: the run's to judge
    ('["${params.tool}"]', "{}", None),  # filled in during the run
    ("[sh]", "{PATH: /nonexistent}", "program 'sh' not found on PATH"),
])
def test_programs_of_command_and_service_steps(write_scenario, argv, env, problem):
    for kind in ("command", "service"):
        path = write_scenario(f"""name: p
params: {{tool: sh}}
steps:
  - name: go
    kind: {kind}
    args: {{argv: {argv}, env: {env}, port: 1}}
""")
        found = checks.problems(load_scenario(path))
        assert found == ([] if problem is None else [f"{path}:6: steps[go].args.argv: {problem}"])


def test_run_rejects_what_validate_rejects_before_the_results_dir(write_scenario, local, tmp_path):
    use = '  - {name: use, kind: preprocess, args: {raw_dir: "${steps.nope.outputs.x}"}}\n'
    path = write_scenario(HEAD + use)
    with pytest.raises(ScenarioInvalid) as info:
        run_scenario(load_scenario(path), local, tmp_path / "results")
    assert info.value.problems == checks.problems(load_scenario(path)) != []
    assert not (tmp_path / "results").exists()


def test_a_param_the_scenario_does_not_declare_is_refused(write_scenario, local, tmp_path):
    path = write_scenario(HEAD)
    with pytest.raises(MinikfError) as info:
        run_scenario(load_scenario(path), local, tmp_path / "results", params={"epoch": 3})
    assert info.value.exit_code == 2
    assert info.value.message == ("--param epoch: not a parameter of scenario refs; its "
                                  "parameters: epochs")


def test_a_missing_program_at_run_time_is_the_steps_message(write_scenario, local, tmp_path,
                                                            monkeypatch):
    """PATH changes between the check and the step (the check passes with the real PATH)."""
    path = write_scenario("name: p\nsteps:\n  - {name: go, kind: command, args: {argv: [sh]}}\n")
    scenario = load_scenario(path)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(checks, "problems", lambda s: [])
    result = run_scenario(scenario, local, tmp_path / "results")
    assert result.steps[0].status == "failed"
    assert result.steps[0].message == "step 'go': args.argv: program 'sh' not found on PATH"


def test_a_kind_producing_an_undeclared_output_fails_its_step(write_scenario, local, tmp_path):
    """A toy step kind registered for this test only (what a plugin would do)."""
    from minikf.steps.base import StepKind, StepOutcome

    kind = StepKind("toy_outputs", lambda ctx: StepOutcome(outputs={"a": 1, "b": 2}), outputs=("a",))
    STEP_KINDS.register("toy_outputs", kind)
    try:
        path = write_scenario("name: t\nsteps:\n  - {name: go, kind: toy_outputs}\n")
        result = run_scenario(load_scenario(path), local, tmp_path / "results")
    finally:
        STEP_KINDS.unregister("toy_outputs")
    assert result.steps[0].status == "failed"
    assert result.steps[0].message == ("step kind 'toy_outputs' produced outputs it does not "
                                       "declare: b (StepKind.outputs)")


def test_every_bundled_scenario_passes_the_checks():
    paths = sorted(SCENARIOS.glob("*.yaml")) + sorted((SCENARIOS / "parts").glob("*.yaml"))
    assert paths
    for path in paths:
        assert checks.problems(load_scenario(path)) == [], path


def test_every_built_in_kind_declares_its_outputs_or_says_it_cannot():
    undeclared = sorted(name for name in STEP_KINDS.names()
                        if checks.step_kind(name).outputs is None)
    assert undeclared == ["command", "notebook", "pipeline"]
