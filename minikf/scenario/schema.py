"""The scenario schema (pydantic) and a loader whose errors name file, line and field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from minikf.plugins import STEP_KINDS
from minikf.runtime.errors import ScenarioInvalid
from minikf.scenario.expectations import Expectation

MAX_BYTES = 1 << 20
"""A scenario file's size limit (the bundled ones are a few KB): a bigger file is refused unread."""
MAX_NODES = 100_000
"""YAML values in a document once aliases are expanded: a few hundred bytes of anchors and
`*references` can otherwise stand for billions of values."""
MAX_DEPTH = 64
"""How deeply lists and mappings may nest (the bundled scenarios: 7)."""

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
    _lines: dict = PrivateAttr(default_factory=dict)

    def where(self, loc: tuple) -> str:
        """`PATH:LINE: field` for a location in the file, e.g. ("steps", 1, "args", "raw_dir")."""
        return f"{self.path}:{_line_for(loc, self._lines)}: {_field_name(loc, self.model_dump())}"

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


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents nested deeper than MAX_DEPTH as soon as it reads
    that deep (a file of 100 000 `[` stops at the 65th)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, token_class) -> None:
        # Checked in the scanner too: it looks up to 1024 characters ahead for a `:` after each
        # `[` or `{`, so a file of brackets costs seconds before the composer sees the depth.
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                            self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(node: yaml.Node, memo: dict[int, int], open_nodes: set[int]) -> int:
    """How many values `node` stands for with every alias expanded (memoized: linear in the
    file); raises ComposerError past MAX_NODES or on an alias inside itself."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_nodes:
        raise yaml.composer.ComposerError(None, None, "an alias refers to a node it is inside of",
                                          node.start_mark)
    open_nodes.add(key)
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    else:
        children = []
    size = 1 + sum(_expanded_size(child, memo, open_nodes) for child in children)
    open_nodes.discard(key)
    if size > MAX_NODES:
        raise yaml.composer.ComposerError(
            None, None, f"expands to more than {MAX_NODES} values through aliases (anchors and "
            "*references); a scenario is far smaller", node.start_mark)
    memo[key] = size
    return size


def _read_text(path: Path) -> str:
    """The file as text, refused unread when over MAX_BYTES and refused when not UTF-8 text."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            raw = b"" if size > MAX_BYTES else handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ScenarioInvalid([f"{path}:1: (file): cannot read: {exc.strerror}"]) from exc
    if size > MAX_BYTES or len(raw) > MAX_BYTES:
        raise ScenarioInvalid([f"{path}:1: (file): {max(size, len(raw))} bytes; a scenario file "
                               f"is at most {MAX_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ScenarioInvalid([f"{path}:{line}: (file): not UTF-8 text (byte {exc.start} is "
                               f"0x{raw[exc.start]:02x}); a scenario is a YAML text file"]) from None
    if "\0" in text:
        line = text[:text.index("\0")].count("\n") + 1
        raise ScenarioInvalid([f"{path}:{line}: (file): a NUL byte; a scenario is a YAML text file"])
    return text


def _parse(path: Path, text: str) -> tuple[yaml.Node | None, object]:
    """The document's node graph (for line numbers) and its data, within the limits above."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _expanded_size(node, {}, set())
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + 1) if mark else 1
        raise ScenarioInvalid([f"{path}:{line}: (yaml): {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioInvalid([f"{path}:1: (yaml): {exc}"]) from None
    finally:
        loader.dispose()


def _line_index(node: yaml.Node, path: tuple = (), index: dict | None = None) -> dict:
    """Map each path of keys/indices in a YAML document to its 1-based line."""
    index = {} if index is None else index
    index[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
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
    node, data = _parse(path, _read_text(path))
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
    scenario._lines = lines
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
