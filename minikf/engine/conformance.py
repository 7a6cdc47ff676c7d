"""`minikf conformance`: every scenario each platform can host, N at a time, into one bundle.

Like Sonobuoy: the bundle starts with a summary anyone can read (summary.txt), then the page
(index.html: scenarios x platforms), the machine-readable summary.json (a ConformanceReport,
with its schema version), junit.xml (a testsuite per platform and scenario), and each run's
results and logs: <scenario>/ with one platform, <platform>/<scenario>/ with several. Platforms
run one after the other, so that they do not slow each other down.
"""

from __future__ import annotations

import math
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from minikf.engine.runner import run_scenario
from minikf.platforms.base import Platform
from minikf.results import (
    ConformanceEntry,
    ConformanceReport,
    PlatformSummary,
    RunResult,
    Status,
    versions,
)
from minikf.results.conformance_page import write_index
from minikf.results.jsonfile import to_json
from minikf.results.junit import write_bundle_junit
from minikf.results.page import metric
from minikf.runtime import files
from minikf.runtime.errors import ScenarioInvalid
from minikf.scenario import Scenario

# Figures every journey that has them shows, besides those its scenario asserts on.
HEADLINE = ("accuracy", "images_per_s", "p95_ms", "rps")


def key_metrics(scenario: Scenario, result: RunResult) -> dict[str, float]:
    """"step.metric" -> value for what the scenario's expectations check, and the headline
    figures; in step order."""
    asserted = {step.name: {e.metric for e in step.expectations()} for step in scenario.steps}
    found: dict[str, float] = {}
    for step in result.steps:
        for name, value in step.metrics.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and math.isfinite(value) and (
                    name in asserted.get(step.name, ()) or name in HEADLINE):
                found[f"{step.name}.{name}"] = value
    return found


def _cell(entry: ConformanceEntry | None) -> str:
    if entry is None:
        return "-"
    if entry.status is Status.SKIPPED:
        return "skipped"
    return f"{entry.status} {entry.duration_s:6.1f}s"


def summary_text(report: ConformanceReport) -> str:
    """The scenarios down, the platforms across: status and seconds, then the key metrics, so
    that a difference between platforms shows at a glance."""
    names = report.platform_names
    lines = [f"minikf conformance on {', '.join(names)} ({report.started}, "
             f"{report.duration_s:.1f}s; results schema {report.schema_version})", ""]
    by = {(e.scenario, e.platform or report.platform): e for e in report.scenarios}
    scenarios = list(dict.fromkeys(e.scenario for e in report.scenarios))
    every_key = {k for e in report.scenarios for k in e.key_metrics}
    width = max([28, *(len(s) + 2 for s in scenarios), *(len(k) + 4 for k in every_key)])
    lines.append(f"  {'scenario':{width}}" + "".join(f"{n:18}" for n in names).rstrip())
    for scenario in scenarios:
        entries = [by.get((scenario, n)) for n in names]
        lines.append(f"  {scenario:{width}}" + "".join(f"{_cell(e):18}" for e in entries).rstrip())
        keys = list(dict.fromkeys(k for e in entries if e for k in e.key_metrics))
        for key in keys:
            values = [metric(key.rsplit(".", 1)[-1], e.key_metrics[key])
                      if e and key in e.key_metrics else "-" for e in entries]
            lines.append(f"    {key:{width - 2}}" + "".join(f"{v:18}" for v in values).rstrip())
        for name, entry in zip(names, entries, strict=True):
            if entry and entry.message:
                lines.append(f"    {name + ': ' if len(names) > 1 else ''}{entry.message}".rstrip())
    lines.append("")
    for name in names:
        only = _only(report, name)
        counts = ", ".join(f"{s} {report.count(s, only)}" for s in Status
                           if s in (Status.PASSED, Status.FAILED, Status.SKIPPED)
                           or report.count(s, only))
        lines.append(f"{name}: {counts}" if len(names) > 1 else counts)
    return "\n".join(lines)


def _only(report: ConformanceReport, name: str) -> str | None:
    """The entries' platform filter: none with one platform (entries of older bundles have none)."""
    return name if len(report.platform_names) > 1 else None


def _run_platform(scenarios: list[Scenario], platform: Platform, folder: Path, prefix: str,
                  jobs: int, progress: Callable[[str, RunResult], None] | None,
                  ) -> tuple[PlatformSummary, list[ConformanceEntry]]:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary = PlatformSummary(platform.name, started, versions=versions(),
                              platform_info=platform.describe())
    clock = time.monotonic()

    def one(scenario: Scenario) -> ConformanceEntry:
        try:
            result = run_scenario(scenario, platform, folder / scenario.name)
            where = f"{prefix}{scenario.name}"
        except ScenarioInvalid as exc:  # refused before it ran: a failed entry, the others still run
            result = RunResult("", scenario.name, platform.name, Status.FAILED,
                               message="; ".join(exc.problems))
            where = ""
        if progress:
            progress(f"{prefix}{scenario.name}", result)
        return ConformanceEntry.of(result, where, key_metrics(scenario, result))

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        entries = list(pool.map(one, scenarios))
    summary.duration_s = round(time.monotonic() - clock, 3)
    return summary, entries


def run_conformance(scenarios: list[Scenario], platforms: Platform | list[Platform], results: Path,
                    jobs: int = 1, progress: Callable[[str, RunResult], None] | None = None,
                    ) -> tuple[ConformanceReport, Path]:
    """Run every scenario on each platform (skipping what one lacks) and write the bundle."""
    platforms = [platforms] if isinstance(platforms, Platform) else list(platforms)
    files.check_writable_dir(results, "results dir",
                             "choose a writable folder with free space (--results DIR)")
    started = datetime.now(timezone.utc)
    work = Path(results) / f"minikf-conformance-{started.strftime('%Y%m%dT%H%M%SZ')}"
    several = len(platforms) > 1
    report = ConformanceReport(",".join(p.name for p in platforms),
                               started.isoformat(timespec="seconds"))
    clock = time.monotonic()
    for platform in platforms:
        prefix = f"{platform.name}/" if several else ""
        summary, entries = _run_platform(scenarios, platform, work / prefix if several else work,
                                         prefix, jobs, progress)
        report.platforms.append(summary)
        report.scenarios += entries
    first = report.platforms[0]
    report.versions, report.platform_info = first.versions, first.platform_info
    if not several:
        report.platform = first.name
    report.duration_s = round(time.monotonic() - clock, 3)
    return report, write_bundle(report, work)


def write_bundle(report: ConformanceReport, work: Path) -> Path:
    """summary.txt, summary.json, junit.xml and index.html into `work`, then work.tar.gz beside
    it with summary.txt first."""
    work.mkdir(parents=True, exist_ok=True)
    files.write_text(work / "summary.txt", summary_text(report) + "\n")
    files.write_text(work / "summary.json", to_json(report))
    write_bundle_junit(report, work / "junit.xml")
    write_index(report, work)
    bundle = work.parent / f"{work.name}.tar.gz"
    with files.atomic_open(bundle, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(work / "summary.txt", arcname=f"{work.name}/summary.txt")
        tar.add(work, arcname=work.name, filter=lambda t: None if t.name == (
            f"{work.name}/summary.txt") else t)
    return bundle
