"""Expectations such as `accuracy >= 0.75`: parsed once, checked against a step's metrics."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

_OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_PATTERN = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")


@dataclass(frozen=True)
class Expectation:
    metric: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: str) -> Expectation:
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(
                f"cannot parse expectation {text!r}: expected 'METRIC OP NUMBER', "
                f"OP one of {', '.join(_OPS)}"
            )
        return cls(match.group(1), match.group(2), float(match.group(3)))

    def check(self, metrics: dict[str, object]) -> str | None:
        """Return None when met, else a message saying what was measured."""
        if self.metric not in metrics:
            return f"expected {self}, but the step reported no metric {self.metric!r}"
        value = metrics[self.metric]
        try:
            ok = _OPS[self.op](float(value), self.bound)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return f"expected {self}, but {self.metric} is {value!r}, not a number"
        return None if ok else f"expected {self}, got {self.metric} = {value}"

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"
