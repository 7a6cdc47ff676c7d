"""results.json and summary.json: the models as JSON, and back."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from minikf.results.model import SCHEMA_VERSION, ConformanceReport, RunResult, StepResult
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
    data = json.loads(Path(path).read_text())
    found = str(data.get("schema_version", UNVERSIONED))
    if _major(found) > _major(SCHEMA_VERSION):
        raise MinikfError(f"{path}: results schema {found} is newer than this minikf reads "
                          f"({SCHEMA_VERSION}); upgrade minikf", exit_code=2)
    step_fields, run_fields = set(StepResult.__dataclass_fields__), set(RunResult.__dataclass_fields__)
    steps = [StepResult(**{k: v for k, v in step.items() if k in step_fields})
             for step in data.pop("steps", [])]
    data.pop("schema_version", None)  # read as this version's model, written as this version
    return RunResult(**{k: v for k, v in data.items() if k in run_fields}, steps=steps)


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0
