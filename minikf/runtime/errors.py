"""The error hierarchy: every error a user should see as a message, not a traceback.

One base type, `MinikfError`, carries the message and the exit code the CLI returns; the CLI
turns it into one line in one place (`minikf.cli.main`). The subclasses say where it came from,
so callers can catch just what they handle.
"""

from __future__ import annotations

import signal


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


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (Ctrl-C, SIGTERM, SIGHUP) after it cleaned up. A
    KeyboardInterrupt, so that no `except Exception` on the way swallows it; the CLI exits with
    128 + the signal's number, as a shell reports a process ended by that signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        self.name = signal.Signals(self.signum).name
        super().__init__(self.message)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def message(self) -> str:
        return f"interrupted by {self.name}: everything the run started was stopped"
