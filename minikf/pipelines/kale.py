"""An annotated Jupyter notebook to a Kubeflow pipeline, with Kale (`kubeflow-kale`).

Kale does the work: its NotebookProcessor reads the cell tags (`imports`, `functions`,
`pipeline-parameters`, `pipeline-metrics`, `step:NAME`, `prev:NAME`, `skip`), finds which
variables each step needs from earlier ones, and its Compiler writes KFP DSL, which kfp's
compiler turns into IR YAML. minikf adds what a user and the platforms need around it:

- one clear line naming the cell for a broken notebook, a tag outside Kale's language, a
  `prev:` cycle or a name no earlier step defines (Kale would raise without the cell, or
  compile a step that fails with a NameError at run time);
- `block:NAME`, the tag of the Kale that shipped with MiniKF, read as Kale 2's `step:NAME`;
- the compiled YAML without the per-task `pip install` from pypi.org that Kale's components
  ask for: the runtime image carries Kale, minikf and the notebook's packages (as minikf's own
  components do with install_kfp_package=False), and sites without internet run it too;
- `for_host_run`: Kale's steps pass data through fixed paths (/tmp/marshal and
  /tmp/mlpipeline-metrics.json, HOME=/tmp), private in a pod or container of their own but
  shared by every user and run when tasks are processes on one host (kfp.local's
  SubprocessRunner); the copy a host run uses points them into the run's private folder.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import yaml

from minikf.runtime.errors import MinikfError
from minikf.runtime.files import write_text

RUNTIME_IMAGE_ENV = "MINIKF_RUNTIME_IMAGE"
DEFAULT_RUNTIME_IMAGE = "minikf/runtime:latest"
_SPECIAL = ("imports", "functions", "pipeline-parameters", "pipeline-metrics", "skip")
_MARSHAL_DIR = '"/tmp/marshal"'
_WRITE_METRICS = "_kale_kfputils.generate_mlpipeline_metrics("
_READ_METRICS = "load_mlpipeline_metrics(kale_metrics_artifact)"


class NotebookInvalid(MinikfError):
    """A notebook Kale cannot turn into a pipeline; the message names the file and the cell."""

    def __init__(self, path: Path | str, where: str, problem: str) -> None:
        super().__init__(f"{path}: {where + ': ' if where else ''}{problem}", exit_code=2)


@dataclass
class CellRole:
    """What one code cell is in Kale's terms: a special block, a step (with its prevs) or skipped."""

    number: int  # 1-based among all cells, as Jupyter shows them
    tags: list[str]
    role: str  # a _SPECIAL name, or "step"
    step: str = ""
    prevs: list[str] = field(default_factory=list)

    def label(self) -> str:
        return f"cell {self.number} ({', '.join(self.tags) or 'untagged, in ' + (self.step or self.role)})"


@dataclass
class CompiledNotebook:
    package: Path
    pipeline_name: str
    steps: dict[str, dict]  # name -> {"prev": [...], "inputs": [...], "outputs": [...]}
    parameters: dict[str, object]
    metrics: list[str]


def runtime_image() -> str:
    return os.environ.get(RUNTIME_IMAGE_ENV) or DEFAULT_RUNTIME_IMAGE


# -- reading and checking the notebook -----------------------------------------------------------

def read_notebook(path: Path):
    """The notebook, validated against nbformat's schema; a problem names the cell."""
    import nbformat
    from nbformat.validator import iter_validate

    try:
        text = Path(path).read_text()
        raw = json.loads(text)
    except OSError as exc:
        raise NotebookInvalid(path, "", f"cannot read it: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotebookInvalid(path, "", f"not a notebook (invalid JSON: {exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise NotebookInvalid(path, "", "not a notebook (no list of cells)")
    try:  # reads joins each cell's source lines; the schema is checked below, cell by cell
        nb = nbformat.reads(text, as_version=4, capture_validation_error={})
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds for a broken file
        raise NotebookInvalid(path, "", f"not a valid notebook: {exc}".splitlines()[0]) from None
    errors = list(iter_validate(nb))
    if errors:
        first = errors[0]
        where = list(first.absolute_path)
        place = f"cell {where[1] + 1}" if len(where) > 1 and where[0] == "cells" else \
            ".".join(map(str, where)) or "(top)"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise NotebookInvalid(path, place, f"not a valid notebook: {first.message}{more}")
    return nb


def normalize_tags(nb) -> None:
    """`block:NAME` (the tag of MiniKF's Kale) is Kale 2's `step:NAME`."""
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags")
        if isinstance(tags, list):
            cell.metadata["tags"] = [f"step:{t[6:]}" if isinstance(t, str) and t.startswith("block:")
                                     else t for t in tags]


def cell_roles(path: Path, nb) -> list[CellRole]:
    """Each code cell's role, read the way Kale reads it: a `step:` or special tag starts a block,
    an untagged cell joins the block above, `skip` leaves the cell out. Tags outside Kale's
    language are refused here, naming the cell."""
    from kale.processors.constants import TAGS_LANGUAGE

    roles, current = [], CellRole(0, [], "untagged")
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        tags = list(cell.metadata.get("tags", []))
        for tag in tags:
            if not any(re.match(pattern, tag) for pattern in TAGS_LANGUAGE):
                raise NotebookInvalid(path, f"cell {number}", f"tag {tag!r} is not in Kale's tag "
                                      "language (imports, functions, pipeline-parameters, "
                                      "pipeline-metrics, step:NAME, prev:NAME, skip, ...)")
        special = next((t for t in tags if t in _SPECIAL), None)
        steps = [t.split(":", 1)[1] for t in tags if t.startswith("step:")]
        prevs = [t.split(":", 1)[1] for t in tags if t.startswith("prev:")]
        if special == "skip":
            roles.append(CellRole(number, tags, "skip"))
            continue
        if special:
            current = CellRole(number, tags, special)
        elif steps:
            current = CellRole(number, tags, "step", steps[0], prevs)
        elif prevs:
            raise NotebookInvalid(path, f"cell {number}", "a prev: tag needs a step:NAME tag on the "
                                  "same cell")
        else:
            current = CellRole(number, tags, current.role, current.step)
        roles.append(current)
    return roles


def check_steps(path: Path, roles: list[CellRole]) -> None:
    """`prev:` tags name steps above the cell, and make no cycle."""
    starts: dict[str, int] = {}
    for role in roles:
        if role.role == "step" and role.tags:
            starts.setdefault(role.step, role.number)
    edges: dict[str, list[tuple[str, CellRole]]] = {}
    for role in roles:
        for prev in role.prevs:
            if prev not in starts:
                known = ", ".join(starts) or "none"
                raise NotebookInvalid(path, role.label(), f"prev:{prev} names no step (steps: {known})")
            edges.setdefault(role.step, []).append((prev, role))
    cycle = _find_cycle(edges)
    if cycle:
        # the cell to fix: the one whose prev: names a step further down
        pairs = [(next(r for p, r in edges[a] if p == b), b) for a, b in pairwise(cycle)]
        culprit = next((r for r, b in pairs if starts[b] > starts[r.step]), pairs[-1][0])
        raise NotebookInvalid(path, culprit.label(), "the prev: tags make a cycle: "
                              + " follows ".join(cycle))
    for role in roles:
        for prev in role.prevs:
            if starts[prev] > starts[role.step]:
                raise NotebookInvalid(path, role.label(), f"prev:{prev} names a step that starts "
                                      f"below, in cell {starts[prev]}; a step can follow only "
                                      "steps above it")


def _find_cycle(edges: dict[str, list[tuple[str, CellRole]]]) -> list[str] | None:
    """The step names around a cycle of `follows` edges ([a, b, a]: a follows b follows a)."""
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for prev, _ in edges.get(node, []):
            if state.get(prev) == 1:
                return [*trail[trail.index(prev):], prev]
            if prev not in state and (found := visit(prev, [*trail, prev])):
                return found
        state[node] = 2
        return None

    for start in list(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def check_syntax(path: Path, nb, roles: list[CellRole]) -> None:
    """Each cell that goes into the pipeline parses as Python (IPython magics aside)."""
    from kale.common.utils import comment_magic_commands

    by_number = {r.number: r for r in roles}
    for number, cell in enumerate(nb.cells, start=1):
        role = by_number.get(number)
        if role is None or role.role == "skip":
            continue
        try:
            ast.parse(comment_magic_commands(cell.source))
        except SyntaxError as exc:
            raise NotebookInvalid(path, f"cell {number}", f"invalid Python on line {exc.lineno}: "
                                  f"{exc.msg}") from None


def check_names(path: Path, nb, roles: list[CellRole], pipeline) -> None:
    """Every name a step uses is defined in it, by an earlier step it follows, by the imports or
    functions, or is a pipeline parameter; otherwise the step would fail with a NameError."""
    from kale.common import flakeutils
    from kale.common.utils import comment_magic_commands

    params = set(pipeline.pipeline_parameters)
    for step in pipeline.steps:
        used = flakeutils.pyflakes_report(code=comment_magic_commands("\n".join(step.source)))
        missing = sorted(used - params - set(step.ins))
        if not missing:
            continue
        name = missing[0]
        cells = [r for r in roles if r.role == "step" and r.step == step.name]
        where = next((r for r in cells if re.search(rf"\b{re.escape(name)}\b",
                                                    nb.cells[r.number - 1].source)), cells[0])
        before = list(pipeline.predecessors(step.name))
        follows = f"it follows {', '.join(before)}" if before else "it follows no step"
        raise NotebookInvalid(path, where.label(), f"step {step.name} uses {name!r}, which no earlier "
                              f"step defines ({follows}) and which is not a pipeline parameter")


# -- compiling -------------------------------------------------------------------------------------

def _import_kale() -> None:
    """Import Kale for compiling, leaving the process's logging as it was: Kale's import installs
    its own LogRecord factory and Logger class process-wide, and logs at INFO to stderr."""
    factory, logger_class = logging.getLogRecordFactory(), logging.getLoggerClass()
    try:
        import kale  # noqa: F401
    except ImportError as exc:
        raise MinikfError(f"Kale is not installed here ({exc}): `pip install 'kubeflow-kale>=2.3,<3'` "
                          "(it needs Python 3.11 or later)", exit_code=2) from None
    finally:
        logging.setLogRecordFactory(factory)
        logging.setLoggerClass(logger_class)
    for name in ("kale", "kale.common"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _process(path: Path, nb, image: str):
    """Kale's NotebookProcessor over a normalized copy of the notebook: the Pipeline."""
    import nbformat
    from kale.processors import NotebookProcessor

    meta = dict(nb.metadata.get("kubeflow_notebook") or {})
    overrides = {"base_image": image}
    if not meta.get("pipeline_name"):
        overrides["pipeline_name"] = re.sub(r"[^a-z0-9-]+", "-", Path(path).stem.lower()).strip("-")
    if not meta.get("experiment_name"):
        overrides["experiment_name"] = "minikf"
    with tempfile.TemporaryDirectory(prefix="minikf-kale-") as tmp:
        copy = Path(tmp) / Path(path).name
        nbformat.write(nb, copy)
        try:
            processor = NotebookProcessor(str(copy), overrides)
            pipeline = processor.run()
        except (ValueError, RuntimeError, NotImplementedError, SyntaxError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NotebookInvalid(path, "", f"Kale: {first}") from None
    return processor, pipeline


def _dsl_pipeline(source: str):
    """Import the DSL Kale wrote and return its pipeline function."""
    with tempfile.TemporaryDirectory(prefix="minikf-kale-dsl-") as tmp:
        script = Path(tmp) / "kale_pipeline.py"
        script.write_text(source)
        spec = importlib.util.spec_from_file_location(f"minikf_kale_{os.getpid()}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.auto_generated_pipeline


def strip_pip_install(docs: list[dict]) -> int:
    """Drop the `pip install` kfp puts in front of each executor for packages_to_install; the
    command left is kfp's own for a component without packages. Returns how many were dropped."""
    dropped = 0
    for executor in docs[0]["deploymentSpec"]["executors"].values():
        command = executor.get("container", {}).get("command", [])
        if command[:2] == ["sh", "-c"] and "pip install" in command[2] and command[3:5] == ["sh", "-ec"]:
            executor["container"]["command"] = command[3:]
            dropped += 1
    return dropped


def compile_notebook(path: Path, output: Path, image: str | None = None) -> CompiledNotebook:
    """Kale: notebook -> pipeline -> KFP IR YAML at `output` (written atomically), checked by
    loading it back with kfp and compiling it again to the same spec."""
    path = Path(path)
    nb = read_notebook(path)
    _import_kale()
    normalize_tags(nb)
    roles = cell_roles(path, nb)
    check_steps(path, roles)
    check_syntax(path, nb, roles)
    if not any(r.role == "step" for r in roles):
        raise NotebookInvalid(path, "", "no cell is tagged step:NAME, so there is no pipeline step")
    processor, pipeline = _process(path, nb, image or runtime_image())
    check_names(path, nb, roles, pipeline)
    from kale.compiler import Compiler
    from kfp import compiler

    try:
        source = Compiler(pipeline, processor.get_imports_and_functions()).generate_dsl()
        func = _dsl_pipeline(source)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise NotebookInvalid(path, "", f"Kale's generated pipeline does not build: {exc}") from None
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minikf-kale-ir-") as tmp:
        raw = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(func, str(raw))
        docs = list(yaml.safe_load_all(raw.read_text()))
    strip_pip_install(docs)
    write_text(output, yaml.safe_dump_all(docs, sort_keys=False))
    check_round_trip(output)
    steps = {s.name: {"prev": sorted(pipeline.predecessors(s.name)), "inputs": sorted(s.ins),
                      "outputs": sorted(s.outs)} for s in pipeline.steps}
    metrics = sorted({m for s in pipeline.steps for m in _metric_names(s)})
    parameters = {k: v.param_value for k, v in pipeline.pipeline_parameters.items()}
    return CompiledNotebook(output, pipeline.config.pipeline_name, steps, parameters, metrics)


def _metric_names(step) -> list[str]:
    return re.findall(r'^\s*"([^"]+)":', "\n".join(step.source), re.M) if step.metrics else []


def check_round_trip(package: Path) -> None:
    """kfp's own checks: the package loads as a component and compiles to the same spec."""
    from kfp import compiler, components

    try:
        loaded = components.load_component_from_file(str(package))
        with tempfile.TemporaryDirectory(prefix="minikf-kale-check-") as tmp:
            again = Path(tmp) / "again.yaml"
            compiler.Compiler().compile(loaded, str(again))
            same = list(yaml.safe_load_all(again.read_text())) == \
                list(yaml.safe_load_all(package.read_text()))
    except Exception as exc:  # noqa: BLE001 - kfp raises many kinds; the user sees one line
        raise MinikfError(f"{package}: kfp does not accept the compiled pipeline: "
                          f"{type(exc).__name__}: {exc}".splitlines()[0], 2) from None
    if not same:
        raise MinikfError(f"{package}: kfp's compile round trip changed the pipeline", 2)


# -- running on one host ----------------------------------------------------------------------------

def _point_at(text: str, marshal: str, metrics: str, counts: dict[str, int]) -> str:
    """One command or argument of a Kale executor, with its /tmp files moved; counts what moved."""
    counts["marshal"] += text.count(_MARSHAL_DIR)
    counts["write"] += text.count(_WRITE_METRICS)
    counts["read"] += text.count(_READ_METRICS)
    text = text.replace(_MARSHAL_DIR, json.dumps(marshal))
    target = f".KFP_UI_METRICS_FILE_PATH = {json.dumps(metrics)}; "
    text = text.replace(_WRITE_METRICS, "_kale_kfputils" + target + _WRITE_METRICS)
    return text.replace(_READ_METRICS,
                        '__import__("kale.common.kfputils", fromlist=["x"])' + target + _READ_METRICS)


def for_host_run(package: Path, private: Path, output: Path) -> Path:
    """A copy of a Kale package whose steps keep their files in `private` (made 0700) instead
    of the host's /tmp: marshalled data, the metrics file and HOME (Jupyter's and IPython's
    files). For kfp.local's SubprocessRunner, where every task is a process on this host."""
    for sub in ("", "marshal", "home"):
        (private / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    docs = list(yaml.safe_load_all(Path(package).read_text()))
    for name, executor in docs[0]["deploymentSpec"]["executors"].items():
        container = executor.get("container", {})
        counts = {"marshal": 0, "write": 0, "read": 0}
        where = (str(private / "marshal"), str(private / f"metrics-{name}.json"), counts)
        container["command"] = [_point_at(c, *where) for c in container.get("command", [])]
        container["args"] = [_point_at(a, *where) for a in container.get("args", [])]
        if not counts["marshal"] or bool(counts["write"]) != bool(counts["read"]):
            raise MinikfError(f"{package}: executor {name} is not the code Kale "
                              f"{_kale_version()} generates (its /tmp paths were not found), so it "
                              "cannot run with tasks as processes on this host", 2)
        container["env"] = [{"name": "HOME", "value": str(private / "home")} if e.get("name") == "HOME"
                            else e for e in container.get("env", [])]
    write_text(output, yaml.safe_dump_all(docs, sort_keys=False), perms=0o600)
    return output


def _kale_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kubeflow-kale")
    except metadata.PackageNotFoundError:
        return "(not installed)"
