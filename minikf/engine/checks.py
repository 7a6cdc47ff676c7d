"""What a scenario must get right beyond its schema, checked before any step runs.

`minikf scenarios validate` and the engine (before the first step) run the same checks, so a
file that validates is not rejected by `run` for something knowable up front:
- every `${...}` reference resolves: `${params.X}` is a declared parameter; `${steps.S.outputs.K}`
  names an earlier step, and K is one of the outputs its kind declares (StepKind.outputs; a kind
  that cannot know them before the run, such as `command`, declares none and only S is checked);
  `${ports.N}`, `${secrets.N}`, `${workdir}` and `${scenario_dir}` always resolve;
- each step kind's own check of its arguments (StepKind.check), e.g. that a command's program
  exists on PATH.
What only the run can know (a value's type after substitution, a file an earlier step writes)
is still the run's to report.
"""

from __future__ import annotations

import re
from typing import Any

from minikf.plugins import STEP_KINDS
from minikf.runtime.errors import MinikfError, ScenarioInvalid
from minikf.scenario.schema import Scenario
from minikf.steps.base import StepKind

_REF = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
ALWAYS = ("workdir", "scenario_dir")
KNOWN = ("${params.NAME}, ${steps.NAME.outputs.KEY}, ${ports.NAME}, ${secrets.NAME}, ${workdir}, "
         "${scenario_dir}")


def step_kind(name: str) -> StepKind:
    """The registered step kind called `name` (minikf.plugins.STEP_KINDS)."""
    kind = STEP_KINDS.get(name)
    if not isinstance(kind, StepKind):
        raise MinikfError(f"step kind {name!r} is registered as {kind!r}, which is not a "
                          f"minikf.steps.base.StepKind", exit_code=2)
    return kind


def _references(value: Any, loc: tuple) -> list[tuple[tuple, str]]:
    """(location, reference) of every `${...}` in a value, depth first."""
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _references(v, loc + (k,))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _references(v, loc + (i,))]
    if isinstance(value, str):
        return [(loc, match) for match in _REF.findall(value)]
    return []


def reference_problem(ref: str, scenario: Scenario, earlier: dict[str, StepKind]) -> str | None:
    """Why `${ref}` cannot resolve where it is used (after the steps in `earlier`), or None."""
    head, _, rest = ref.partition(".")
    if (head in ALWAYS and not rest) or (head in ("ports", "secrets") and rest):
        return None
    if head == "params":
        if rest in scenario.params:
            return None
        declared = ", ".join(scenario.params) or "none"
        return f"not a parameter of this scenario (it has: {declared})"
    if head == "steps":
        step, sep, key = rest.partition(".outputs.")
        if not sep or not key:
            return "expected ${steps.NAME.outputs.KEY}"
        if step not in earlier:
            return f"no earlier step {step!r}"
        kind = earlier[step]
        if kind.undeclared([key]):
            return (f"step {step!r} ({kind.name}) has no output {key!r} (it has: "
                    f"{', '.join(kind.outputs)})")
        return None
    return f"unknown reference; known: {KNOWN}"


def problems(scenario: Scenario) -> list[str]:
    """Every problem, each as `PATH:LINE: field: problem`."""
    found: list[str] = []
    for loc, ref in _references(scenario.params, ("params",)):
        if ref.startswith("steps."):  # parameters are filled in before any step has run
            found.append(f"{scenario.where(loc)}: ${{{ref}}}: parameters cannot use step outputs")
        elif problem := reference_problem(ref, scenario, {}):
            found.append(f"{scenario.where(loc)}: ${{{ref}}}: {problem}")
    earlier: dict[str, StepKind] = {}
    for i, step in enumerate(scenario.steps):
        kind = step_kind(step.kind)
        for loc, ref in _references(step.args, ("steps", i, "args")):
            if problem := reference_problem(ref, scenario, earlier):
                found.append(f"{scenario.where(loc)}: ${{{ref}}}: {problem}")
        for arg, problem in (kind.check(step.args) if kind.check else {}).items():
            found.append(f"{scenario.where(('steps', i, 'args', arg))}: {problem}")
        earlier[step.name] = kind
    return found


def check(scenario: Scenario) -> None:
    """Raise ScenarioInvalid listing every problem (none: the scenario may run)."""
    found = problems(scenario)
    if found:
        raise ScenarioInvalid(found)


def check_params(scenario: Scenario, params: dict) -> None:
    """Parameters given for a run (`--param`) must be ones the scenario declares: a misspelt
    name would otherwise be ignored without a word."""
    for name in params:
        if name not in scenario.params:
            declared = ", ".join(scenario.params) or "none"
            raise MinikfError(f"--param {name}: not a parameter of scenario {scenario.name}; its "
                              f"parameters: {declared}", exit_code=2)
