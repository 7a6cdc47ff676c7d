"""What a step kind receives and returns."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minikf.engine.resources import Resources


class StepFailed(Exception):
    """A step's own failure, with the message the user sees."""


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a step's log, for a failure message."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


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
    resources: Resources
    platform: Any
    params: dict[str, Any]
    timeout: float
    results_dir: Path
    status: Callable[[str], None] = field(default=lambda text: None)
    """Updates the live progress line of this step (a no-op when not on a terminal)."""

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
