"""The error hierarchy: every error a user should see as a message, not a traceback.

One base type, `MinikfError`, carries the message and the exit code the CLI returns; the CLI
turns it into one line in one place (`minikf.cli.main`). The subclasses say where it came from,
so callers can catch just what they handle.
"""

from __future__ import annotations


class MinikfError(Exception):
    """An error with a user-facing message and the exit code the CLI returns."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ScenarioInvalid(MinikfError):
    """A scenario file failed validation; `problems` holds one `PATH:LINE: field: msg` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems), exit_code=2)
        self.problems = problems


class StepFailed(MinikfError):
    """A step's own failure (raised by a step kind or the platform doing its work); the
    message is what the step's result says."""


class NotReady(MinikfError):
    """Something started (a server, a port, a resource) did not become ready in time, or
    exited first; the message says what and how long it was given."""


class WriteFailed(MinikfError):
    """A file minikf keeps could not be written (a full disk, a read-only folder); the message
    names the file and the reason, and the earlier file, if any, is still whole."""
