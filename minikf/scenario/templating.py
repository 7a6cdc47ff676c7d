"""`${params.x}`, `${steps.NAME.outputs.KEY}`, `${ports.NAME}`, `${workdir}` in step args."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_REF = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


class TemplateError(ValueError):
    pass


def render(value: Any, lookup: Callable[[str], Any]) -> Any:
    """Substitute references recursively; a string that is one whole reference keeps its type."""
    if isinstance(value, dict):
        return {k: render(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, lookup) for v in value]
    if not isinstance(value, str):
        return value
    whole = _REF.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    return _REF.sub(lambda m: str(lookup(m.group(1))), value)
