"""The tuning spec (Katib Experiment's fields), validated before any trial starts.

Errors name the field (`spec.parameters[1].min`) and say what was expected, so a bad search
space costs the user a second, not a wasted trial budget.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from minikf.runtime.errors import MinikfError

# The Fashion-MNIST trainer's own flags (minikf.workload.train_worker) and their sane bounds.
TUNABLE = {"lr": (float, 0.0, 10.0), "batch_size": (int, 1, 4096), "epochs": (int, 1, 100)}
OBJECTIVES = {"accuracy": "maximize", "loss": "minimize"}


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: Literal["accuracy", "loss"] = "accuracy"
    """Measured on the test split after every epoch: accuracy, or cross-entropy loss."""
    type: Literal["maximize", "minimize"] | None = None
    goal: float | None = None
    """Stop the search early once a trial reaches it (Katib's objective.goal)."""

    @model_validator(mode="after")
    def _direction(self) -> Objective:
        natural = OBJECTIVES[self.metric]
        if self.type is None:
            self.type = natural
        elif self.type != natural:
            raise ValueError(f"type {self.type!r} makes no sense for {self.metric!r}: "
                             f"it should be {natural!r}")
        return self


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: Literal["double", "int", "categorical"]
    min: float | None = None
    max: float | None = None
    log: bool = False
    step: float | None = None
    values: list[int | float] | None = None

    @model_validator(mode="after")
    def _feasible(self) -> Parameter:
        if self.name not in TUNABLE:
            raise ValueError(f"unknown parameter {self.name!r}: the trainer takes "
                             f"{', '.join(TUNABLE)}")
        kind, low, high = TUNABLE[self.name]
        if kind is int and self.type == "double":
            raise ValueError(f"{self.name} is an integer: use type int or categorical")
        if self.type == "categorical":
            if not self.values:
                raise ValueError("values: a categorical parameter needs at least one value")
            if self.min is not None or self.max is not None:
                raise ValueError("min/max: not used with categorical; give values only")
            candidates = self.values
            if kind is int and any(v != int(v) for v in candidates):
                raise ValueError(f"values: {self.name} takes integers, got {candidates}")
        else:
            if self.values is not None:
                raise ValueError("values: only for categorical; give min and max")
            if self.min is None or self.max is None:
                raise ValueError("min and max are both required")
            if not self.min < self.max:
                raise ValueError(f"empty range: min {self.min:g} must be below max {self.max:g}")
            if self.log and self.min <= 0:
                raise ValueError(f"log scale needs min > 0, got {self.min:g}")
            if self.type == "int" and (self.min != int(self.min) or self.max != int(self.max)):
                raise ValueError("min/max of an int parameter must be integers")
            candidates = [self.min, self.max]
        bad = [v for v in candidates if not (low < v <= high if kind is float else low <= v <= high)
               or math.isnan(v)]
        if bad:
            where = f"({low:g}, {high:g}]" if kind is float else f"[{low}, {high}]"
            raise ValueError(f"{self.name} must lie in {where}, got {bad[0]:g}")
        return self


class EarlyStopping(BaseModel):
    """Median stopping (Katib's medianstop): a trial whose epoch-N value is worse than the median
    of earlier trials at epoch N is stopped."""

    model_config = ConfigDict(extra="forbid")
    algorithm: Literal["median", "none"] = "median"
    min_trials_required: int = Field(2, ge=1)
    start_step: int = Field(1, ge=1)
    """The first epoch at which a trial may be stopped."""


class TuningSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: Objective = Field(default_factory=Objective)
    algorithm: Literal["tpe", "random"] = "tpe"
    max_trials: int = Field(6, ge=1, le=1000)
    parallel_trials: int = Field(2, ge=1, le=64)
    max_failed_trials: int = Field(1, ge=0)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    parameters: list[Parameter]
    seed: int = 0
    workers: int = Field(1, ge=1, le=8)
    """Training processes per trial (the PyTorchJob env contract), 1 by default."""

    @field_validator("parameters")
    @classmethod
    def _space(cls, parameters: list[Parameter]) -> list[Parameter]:
        if not parameters:
            raise ValueError(f"the search space is empty; give at least one of {', '.join(TUNABLE)}")
        names = [p.name for p in parameters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{', '.join(dupes)} given more than once")
        return parameters

    @model_validator(mode="after")
    def _budget(self) -> TuningSpec:
        if self.parallel_trials > self.max_trials:
            raise ValueError(f"parallel_trials {self.parallel_trials} exceeds max_trials "
                             f"{self.max_trials}")
        return self


def _where(loc: tuple, spec: dict) -> str:
    """`spec.parameters[1] (batch_size).min` from pydantic's error location."""
    where = "spec"
    for item in loc:
        if isinstance(item, int):
            where += f"[{item}]"
            entries = spec.get("parameters")
            if loc[0] == "parameters" and isinstance(entries, list) and item < len(entries) \
                    and isinstance(entries[item], dict):
                where += f" ({entries[item].get('name', '?')})"
        else:
            where += f".{item}"
    return where


def parse_spec(raw: object, step: str = "tune") -> TuningSpec:
    """A validated spec, or one MinikfError listing every problem with its field."""
    if not isinstance(raw, dict):
        raise MinikfError(f"step {step!r}: spec should be a mapping, got {type(raw).__name__}", 2)
    try:
        return TuningSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_where(e['loc'], raw)}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()]
        raise MinikfError(f"step {step!r}: invalid tuning spec: " + "; ".join(problems), 2) from exc
