"""Reading a process's log back for a message."""

from __future__ import annotations

import json
from pathlib import Path


def log_tail(path: Path | str, lines: int = 5) -> str:
    """The last lines of a log, for a failure message."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


def last_json_line(log_text: str) -> dict:
    """The last line of a process's output that is a JSON object (how a command reports its
    metrics); {} when there is none."""
    for line in reversed(log_text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}
