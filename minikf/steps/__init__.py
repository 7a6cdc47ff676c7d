"""Step kinds. Every module in this package but `base` is one step kind, named after the module,
with a `run(ctx: StepContext) -> StepOutcome` function. Shared code lives outside this package.

A kind may also name `WARM_MODULES`, the Python modules its processes run (`python -m MODULE`),
so that a platform that can import them ahead (local) does so when the run starts.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from minikf.steps.base import StepContext, StepFailed, StepOutcome

_NOT_KINDS = {"base"}

STEP_KINDS: dict[str, str] = {
    module.name: f"minikf.steps.{module.name}:run"
    for module in pkgutil.iter_modules(__path__)
    if module.name not in _NOT_KINDS and not module.name.startswith("_")
}


def load_step(kind: str) -> Callable[[StepContext], StepOutcome]:
    module, _, func = STEP_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), func)


def warm_modules(kind: str) -> tuple[str, ...]:
    """The modules the kind's processes run, to import ahead (its `WARM_MODULES`)."""
    module = STEP_KINDS[kind].partition(":")[0]
    return tuple(getattr(importlib.import_module(module), "WARM_MODULES", ()))


__all__ = ["STEP_KINDS", "StepContext", "StepFailed", "StepOutcome", "load_step", "warm_modules"]
