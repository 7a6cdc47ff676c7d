"""`minikf conformance`: every scenario a platform can host, N at a time, into one bundle.

Like Sonobuoy: the bundle starts with a summary anyone can read (summary.txt), then the
machine-readable summary.json (a ConformanceReport, with its schema version), each scenario's
results and logs, and the versions.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from minikf.engine.runner import run_scenario
from minikf.platforms.base import Platform
from minikf.results import ConformanceEntry, ConformanceReport, RunResult, Status, versions
from minikf.results.jsonfile import to_json
from minikf.runtime import files
from minikf.runtime.errors import ScenarioInvalid
from minikf.scenario import Scenario


def summary_text(report: ConformanceReport) -> str:
    lines = [f"minikf conformance on {report.platform} ({report.started}, "
             f"{report.duration_s:.1f}s; results schema {report.schema_version})", ""]
    for entry in report.scenarios:
        lines.append(f"  {entry.status:8} {entry.scenario:28} {entry.duration_s:7.1f}s"
                     f"  {entry.message}".rstrip())
    counts = [f"{status} {report.count(status)}" for status in Status
              if status not in (Status.TIMEOUT, Status.INTERRUPTED) or report.count(status)]
    lines += ["", ", ".join(counts)]
    return "\n".join(lines)


def run_conformance(scenarios: list[Scenario], platform: Platform, results: Path, jobs: int = 1,
                    progress: Callable[[str, RunResult], None] | None = None,
                    ) -> tuple[ConformanceReport, Path]:
    """Run every scenario (skipping what the platform lacks) and write the bundle."""
    files.check_writable_dir(results, "results dir",
                             "choose a writable folder with free space (--results DIR)")
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = results / f"minikf-conformance-{stamp}"
    report = ConformanceReport(platform.name, started.isoformat(timespec="seconds"),
                               versions=versions(), platform_info=platform.describe())
    clock = time.monotonic()

    def one(scenario: Scenario) -> RunResult:
        try:
            result = run_scenario(scenario, platform, work / scenario.name)
        except ScenarioInvalid as exc:  # refused before it ran: a failed entry, the others still run
            result = RunResult("", scenario.name, platform.name, Status.FAILED,
                               message="; ".join(exc.problems))
        if progress:
            progress(scenario.name, result)
        return result

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        report.scenarios = [ConformanceEntry.of(r) for r in pool.map(one, scenarios)]
    report.duration_s = round(time.monotonic() - clock, 3)
    files.write_text(work / "summary.txt", summary_text(report) + "\n")
    files.write_text(work / "summary.json", to_json(report))
    bundle = results / f"{work.name}.tar.gz"
    with files.atomic_open(bundle, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(work / "summary.txt", arcname=f"{work.name}/summary.txt")
        tar.add(work, arcname=work.name, filter=lambda t: None if t.name.endswith(
            "/summary.txt") else t)
    return report, bundle
