"""The scenario schema (pydantic) and a loader whose errors name file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from minikf.plugins import STEP_KINDS
from minikf.runtime.errors import ScenarioInvalid
from minikf.scenario.expectations import Expectation

CAPABILITIES = {
    "pipelines", "training", "serving", "tuning", "notebooks", "metadata", "isolation", "gpu",
}


class Step(BaseModel):
    """One named step: a kind (registered in minikf.plugins.STEP_KINDS), its arguments, a timeout,
    expectations."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: str
    args: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=600, gt=0, description="seconds")
    expect: list[str] = Field(default_factory=list)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in STEP_KINDS:
            raise ValueError(f"unknown step kind {kind!r}; known: {', '.join(STEP_KINDS.names())}")
        return kind

    @field_validator("expect")
    @classmethod
    def _parsable(cls, expect: list[str]) -> list[str]:
        for text in expect:
            Expectation.parse(text)
        return expect

    def expectations(self) -> list[Expectation]:
        return [Expectation.parse(text) for text in self.expect]


class Scenario(BaseModel):
    """A journey: the capabilities it needs, default parameters, and ordered steps."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    requires: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("requires")
    @classmethod
    def _known_capabilities(cls, requires: list[str]) -> list[str]:
        unknown = sorted(set(requires) - CAPABILITIES)
        if unknown:
            raise ValueError(
                f"unknown capability {', '.join(unknown)}; known: {', '.join(sorted(CAPABILITIES))}"
            )
        return requires

    @field_validator("steps")
    @classmethod
    def _unique_names(cls, steps: list[Step]) -> list[Step]:
        names = [step.name for step in steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate step name {', '.join(duplicates)}")
        return steps


def _line_index(node: yaml.Node, path: tuple = (), index: dict | None = None) -> dict:
    """Map each path of keys/indices in a YAML document to its 1-based line."""
    index = {} if index is None else index
    index[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            index[path + (key.value,)] = key.start_mark.line + 1
            _line_index(value, path + (key.value,), index)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, path + (i,), index)
    return index


def _line_for(loc: tuple, lines: dict) -> int:
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def _field_name(loc: tuple, data: Any) -> str:
    """`steps[2].timeout`, or `steps.train.timeout` when the step has a name."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            name = node[part].get("name") if isinstance(node, list) and isinstance(
                node[part], dict) else None
            parts[-1] = f"{parts[-1]}[{name or part}]" if parts else f"[{part}]"
        else:
            parts.append(str(part))
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts) or "(document)"


def load_scenario(path: Path | str) -> Scenario:
    """Load and validate one scenario file; raise ScenarioInvalid listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioInvalid([f"{path}:1: (file): cannot read: {exc.strerror}"]) from exc
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = (exc.problem_mark.line + 1) if exc.problem_mark else 1
        raise ScenarioInvalid([f"{path}:{line}: (yaml): {exc.problem}"]) from exc
    if not isinstance(data, dict):
        raise ScenarioInvalid([f"{path}:1: (document): expected a mapping with name and steps"])
    lines = _line_index(node)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}"
            problems.append(f"{path}:{_line_for(loc, lines)}: {_field_name(loc, data)}: {msg}")
        raise ScenarioInvalid(problems) from exc
    scenario.path = path
    return scenario


def validate_paths(paths: list[Path]) -> list[str]:
    """Validate many files; return every problem found (empty when all are valid)."""
    problems: list[str] = []
    for path in paths:
        try:
            load_scenario(path)
        except ScenarioInvalid as exc:
            problems.extend(exc.problems)
    return problems
