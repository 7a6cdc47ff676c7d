"""What a step kind is, receives and returns.

A step kind is one module in this package (or an outside package) that defines
`KIND = StepKind(name, run, warm_modules)` and is registered in `minikf.plugins.STEP_KINDS`.
`run(ctx)` does the step's work, mostly by asking `ctx.platform` (the typed platform contract in
minikf/platforms/base.py), and returns a `StepOutcome`; it raises StepFailed (or any MinikfError)
with the message the user sees.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minikf.runtime.errors import StepFailed
from minikf.runtime.processes import RunResources

if TYPE_CHECKING:
    from minikf.platforms.base import Platform


@dataclass
class StepOutcome:
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class StepContext:
    name: str
    args: dict[str, Any]
    workdir: Path
    log_path: Path
    resources: RunResources
    platform: Platform
    params: dict[str, Any]
    timeout: float
    results_dir: Path
    status: Callable[[str], None] = field(default=lambda text: None)
    """Updates the live progress line of this step (a no-op when not on a terminal)."""
    run_scenario: Callable[..., Any] | None = None
    """The engine's run_scenario(scenario, platform, results_dir, params=, progress=), for a step
    that runs a scenario of its own (profile_run); handed in so steps never import the engine."""

    def unique_name(self) -> str:
        """A name for what this step creates, unique per run and valid as a Kubernetes object name."""
        return f"minikf-{self.name}-{secrets.token_hex(3)}"

    def arg(self, key: str, default: Any = ..., kind: type | tuple = object) -> Any:
        """An argument, with a clear error naming the step and field when missing or wrong."""
        if key not in self.args:
            if default is ...:
                raise StepFailed(f"step {self.name!r}: missing argument args.{key}")
            return default
        value = self.args[key]
        if not isinstance(value, kind):
            raise StepFailed(
                f"step {self.name!r}: args.{key} should be {getattr(kind, '__name__', kind)}, "
                f"got {type(value).__name__}"
            )
        return value

    def open_log(self):
        """The step's log, for appending lines; its folder is made when missing."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return open(self.log_path, "a")


ArgsCheck = Callable[[dict[str, Any]], dict[str, str]]
"""A step kind's check of its arguments before the run: {argument name: problem}."""


@dataclass(frozen=True)
class StepKind:
    """A step kind: its name in scenarios, its `run`, and the Python modules its processes run
    (`python -m MODULE`), which a platform that can import them ahead (local) does when the run
    starts.

    `outputs` names what `${steps.NAME.outputs.KEY}` may use (its metrics and outputs; shell
    patterns such as `best_*` allowed), so that `minikf scenarios validate` rejects a KEY no run
    could produce, and the engine fails a step that produces an undeclared one. None: not known
    before the run (a command's stdout JSON, a notebook's metrics), so only the step is checked.
    `check` looks at the arguments as written (before `${...}` is filled in) for what is wrong
    whatever the run does, e.g. a program that is not on PATH."""

    name: str
    run: Callable[[StepContext], StepOutcome]
    warm_modules: tuple[str, ...] = ()
    outputs: tuple[str, ...] | None = None
    check: ArgsCheck | None = None

    def undeclared(self, keys) -> list[str]:
        """The keys among `keys` that `outputs` does not declare (none when not declared)."""
        if self.outputs is None:
            return []
        return [k for k in keys if not any(fnmatchcase(k, pattern) for pattern in self.outputs)]


def program_problem(program: str, env: dict | None = None) -> str | None:
    """What is wrong with running `program` as argv[0] (None: nothing found wrong). `python` is
    this interpreter, as the command and service steps run it; a bare name is looked up on PATH
    (the step's own env PATH when it sets one); a path relative to the run's work dir is known
    only during the run, so it is not judged here."""
    if program == "python":
        program = sys.executable
    if "/" not in program:
        path = (env or {}).get("PATH", os.environ.get("PATH", os.defpath))
        return None if shutil.which(program, path=str(path)) else f"program {program!r} not found on PATH"
    if os.path.isabs(program) and not os.access(program, os.X_OK):
        return f"program {program!r} does not exist or is not executable"
    return None


def check_argv(args: dict[str, Any]) -> dict[str, str]:
    """The command and service steps' check before the run: argv[0] exists (when it is written
    out, not a `${...}` filled in during the run)."""
    argv, env = args.get("argv"), args.get("env") or {}
    if not isinstance(argv, list) or not argv or not isinstance(argv[0], str) or "${" in argv[0]:
        return {}
    if not isinstance(env, dict) or "${" in str(env.get("PATH", "")):
        env = {}
    problem = program_problem(argv[0], env)
    return {"argv": problem} if problem else {}
