"""Read a kfp.local run log for what failed: the task's name and its own error line."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_FAILED = re.compile(r"Task '([^']+)' finished with status FAILURE")
_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(?::\s.*)?$")


def failed_task(log_text: str) -> tuple[str, str] | None:
    """(task name, the last exception line it logged) for the first task that failed."""
    lines = _ANSI.sub("", log_text).splitlines()
    for index, line in enumerate(lines):
        match = _TASK_FAILED.search(line)
        if not match:
            continue
        error = ""
        for earlier in reversed(lines[:index]):
            if "Executing task" in earlier:
                break
            if _ERROR_LINE.match(earlier):
                error = earlier.strip()
                break
        return match.group(1), error
    return None
