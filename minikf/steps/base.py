"""What a step kind is, receives and returns.

A step kind is one module in this package (or an outside package) that defines
`KIND = StepKind(name, run, warm_modules)` and is registered in `minikf.plugins.STEP_KINDS`.
`run(ctx)` does the step's work, mostly by asking `ctx.platform` (the typed platform contract in
minikf/platforms/base.py), and returns a `StepOutcome`; it raises StepFailed (or any MinikfError)
with the message the user sees.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class StepKind:
    """A step kind: its name in scenarios, its `run`, and the Python modules its processes run
    (`python -m MODULE`), which a platform that can import them ahead (local) does when the run
    starts."""

    name: str
    run: Callable[[StepContext], StepOutcome]
    warm_modules: tuple[str, ...] = ()
