"""Step kinds, by name -> "module:function"; each kind is one small module.

A step function takes a StepContext and returns a StepOutcome (metrics, outputs, series).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from minikf.steps.base import StepContext, StepFailed, StepOutcome

STEP_KINDS = {
    "command": "minikf.steps.command:run",
    "service": "minikf.steps.service:run",
    "download": "minikf.steps.download:run",
    "preprocess": "minikf.steps.preprocess:run",
    "serve": "minikf.steps.serve:run",
    "predict": "minikf.steps.predict:run",
    "pipeline": "minikf.steps.pipeline:run",
    "train": "minikf.steps.train:run",
    "evaluate": "minikf.steps.evaluate:run",
}


def load_step(kind: str) -> Callable[[StepContext], StepOutcome]:
    module, _, func = STEP_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), func)


__all__ = ["STEP_KINDS", "StepContext", "StepFailed", "StepOutcome", "load_step"]
