"""The results model: one status tree from step to run to conformance bundle.

As in Sonobuoy, every level has the same statuses and one aggregation rule (`aggregate`), and
what is written carries a `schema_version` so that tools reading results.json or a bundle's
summary.json know which layout they hold (the JSON Schemas are generated from these classes:
schema.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

# The layout of results.json and of a bundle's summary.json. A new field that old readers can
# ignore keeps the major number; a renamed or removed one bumps it.
SCHEMA_VERSION = "1.2"  # 1.1: the status `interrupted`; 1.2: StepResult.gone, the bundle's platforms


class Status(str, Enum):
    """A step's, a run's or a bundle's outcome."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    """Stopped from outside before it could finish (Ctrl-C, SIGTERM, its minikf process
    killed): no verdict on what it tests, but not a pass either."""

    def __str__(self) -> str:
        return self.value

    @property
    def failed(self) -> bool:
        """Failed or timed out: what makes the level above fail."""
        return self in (Status.FAILED, Status.TIMEOUT)

    @property
    def ok(self) -> bool:
        """Nothing wrong at this level: passed, or skipped with a reason."""
        return self in (Status.PASSED, Status.SKIPPED)

    @property
    def mark(self) -> str:
        """kind's progress mark: ✓ passed, ✗ failed or timed out, ! interrupted, - skipped."""
        return {Status.PASSED: "✓", Status.SKIPPED: "-", Status.INTERRUPTED: "!"}.get(self, "✗")


def aggregate(statuses: Iterable[Status | str]) -> Status:
    """The one rule for every level: failed if any part failed or timed out (a failure seen is
    reported even when the rest was cut short); else interrupted if any part was; skipped if
    every part was skipped (or there were none); passed otherwise."""
    found = [Status(s) for s in statuses]
    if any(s.failed for s in found):
        return Status.FAILED
    if Status.INTERRUPTED in found:
        return Status.INTERRUPTED
    if all(s is Status.SKIPPED for s in found):
        return Status.SKIPPED
    return Status.PASSED


@dataclass
class StepResult:
    """One step of a run: what it measured, produced and where its log is."""

    name: str
    kind: str
    status: Status = Status.SKIPPED
    started: str = ""  # UTC, ISO 8601 with milliseconds
    duration_s: float = 0.0
    message: str = ""
    metrics: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    log: str | None = None
    gone: dict = field(default_factory=dict)
    """Outputs that named a path in the run's work dir, too big to keep in the results dir:
    output name -> the path it had (the value in `outputs` is then null)."""

    def __post_init__(self) -> None:
        self.status = Status(self.status)


@dataclass
class RunResult:
    """One scenario run on one platform: its steps, the versions of what ran, the platform."""

    run_id: str
    scenario: str
    platform: str
    status: Status = Status.SKIPPED
    message: str = ""
    started: str = ""
    duration_s: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    platform_info: dict = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    @property
    def ok(self) -> bool:
        return self.status is Status.PASSED


@dataclass
class StepSummary:
    """A step as the conformance summary lists it."""

    name: str
    status: Status
    duration_s: float
    message: str = ""
    kind: str = ""

    def __post_init__(self) -> None:
        self.status = Status(self.status)


@dataclass
class ConformanceEntry:
    """One scenario's run on one platform in a conformance bundle."""

    scenario: str
    status: Status
    message: str
    duration_s: float
    steps: list[StepSummary] = field(default_factory=list)
    platform: str = ""
    results: str = ""
    """The run's results dir, relative to the bundle's top folder."""
    key_metrics: dict = field(default_factory=dict)
    """"step.metric" -> value: what the scenario asserts on, and the journeys' headline figures."""

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    @classmethod
    def of(cls, result: RunResult, results: str = "",
           key_metrics: dict | None = None) -> ConformanceEntry:
        return cls(result.scenario, result.status, result.message, result.duration_s,
                   [StepSummary(s.name, s.status, s.duration_s, s.message, s.kind)
                    for s in result.steps],
                   result.platform, results, key_metrics or {})


@dataclass
class PlatformSummary:
    """One platform of a bundle: what it is, the versions it ran, how long its part took."""

    name: str
    started: str = ""
    duration_s: float = 0.0
    versions: dict = field(default_factory=dict)
    platform_info: dict = field(default_factory=dict)


@dataclass
class ConformanceReport:
    """A bundle's summary.json: every scenario's entry (one per platform it ran on), the
    platforms and the versions. `platform`, `versions` and `platform_info` are the first
    platform's, as before several platforms could share a bundle."""

    platform: str
    started: str
    duration_s: float = 0.0
    scenarios: list[ConformanceEntry] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    platform_info: dict = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION
    platforms: list[PlatformSummary] = field(default_factory=list)

    def count(self, status: Status | str, platform: str | None = None) -> int:
        return sum(1 for s in self.scenarios if s.status == Status(status)
                   and (platform is None or s.platform == platform))

    @property
    def platform_names(self) -> list[str]:
        return [p.name for p in self.platforms] or [self.platform]

    @property
    def status(self) -> Status:
        return aggregate(s.status for s in self.scenarios)

    @property
    def ok(self) -> bool:
        return self.status.ok
