"""Results: the model (statuses, step/run/bundle results, schema version) and its writers.

One module per format: jsonfile (results.json), junit (junit.xml), html (report.html), schema
(the published JSON Schemas). `write_all` writes a run's three files.
"""

from __future__ import annotations

from pathlib import Path

from minikf.results.jsonfile import write_json
from minikf.results.junit import write_junit
from minikf.results.model import (
    SCHEMA_VERSION,
    ConformanceEntry,
    ConformanceReport,
    PlatformSummary,
    RunResult,
    Status,
    StepResult,
    aggregate,
)
from minikf.results.versions import versions


def write_all(result: RunResult, results_dir: Path) -> None:
    """results.json, junit.xml and report.html for one run, each written atomically (an earlier
    file stays whole when one cannot be written: WriteFailed names it)."""
    # Imported here: the report's charts need numpy, which a run's start should not wait for.
    from minikf.results.html import write_html

    results_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, results_dir / "results.json")
    write_junit(result, results_dir / "junit.xml")
    write_html(result, results_dir / "report.html")


__all__ = ["SCHEMA_VERSION", "ConformanceEntry", "ConformanceReport", "PlatformSummary", "RunResult",
           "Status", "StepResult", "aggregate", "versions", "write_all"]
