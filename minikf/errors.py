"""One error type for everything a user should see as a message, not a traceback."""

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
