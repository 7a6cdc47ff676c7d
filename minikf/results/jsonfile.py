"""results.json and summary.json: the models as JSON, and back."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from minikf.results.model import (
    SCHEMA_VERSION,
    ConformanceEntry,
    ConformanceReport,
    PlatformSummary,
    RunResult,
    StepResult,
    StepSummary,
)
from minikf.runtime import files
from minikf.runtime.errors import MinikfError

# A results.json written before the layout was versioned has no schema_version: it is 0.x.
UNVERSIONED = "0"


def to_json(obj: RunResult | ConformanceReport) -> str:
    return json.dumps(asdict(obj), indent=2, default=str)


def write_json(result: RunResult, path: Path) -> None:
    files.write_text(path, to_json(result))


def load_json(path: Path) -> RunResult:
    """A results.json back into a RunResult (to write its report again). Layouts from before
    versioning read as they are; a newer major version is refused with the versions named."""
    data = _read(path)
    steps = [_known(StepResult, step) for step in data.pop("steps", [])]
    return _known(RunResult, data, steps=steps)


def load_summary(path: Path) -> ConformanceReport:
    """A bundle's summary.json back into a ConformanceReport (for its page, or `minikf ui`)."""
    data = _read(path)
    entries = [_known(ConformanceEntry, e, steps=[_known(StepSummary, s) for s in e.pop("steps", [])])
               for e in data.pop("scenarios", [])]
    platforms = [_known(PlatformSummary, p) for p in data.pop("platforms", [])]
    return _known(ConformanceReport, data, scenarios=entries, platforms=platforms)


def _read(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MinikfError(f"{path}: cannot read ({exc.strerror})", exit_code=2) from None
    except ValueError as exc:
        raise MinikfError(f"{path}: not JSON ({exc})", exit_code=2) from None
    if not isinstance(data, dict):
        raise MinikfError(f"{path}: expected a JSON object", exit_code=2)
    found = str(data.get("schema_version", UNVERSIONED))
    if _major(found) > _major(SCHEMA_VERSION):
        raise MinikfError(f"{path}: results schema {found} is newer than this minikf reads "
                          f"({SCHEMA_VERSION}); upgrade minikf", exit_code=2)
    data.pop("schema_version", None)  # read as this version's model, written as this version
    return data


def _known(model: type, data: dict, **extra):
    """The model from the fields it knows (a newer minor version may add some)."""
    fields = set(model.__dataclass_fields__)
    return model(**{k: v for k, v in data.items() if k in fields and k not in extra}, **extra)


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0
