"""`minikf conformance`: every scenario a platform can host, N at a time, into one bundle.

Like Sonobuoy: the bundle starts with a summary anyone can read (summary.txt), then the
machine-readable summary.json, each scenario's results and logs, and the versions.
"""

from __future__ import annotations

import json
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from minikf.engine.results import RunResult, versions
from minikf.engine.runner import run_scenario
from minikf.scenario import Scenario


@dataclass
class ConformanceReport:
    platform: str
    started: str
    duration_s: float = 0.0
    scenarios: list[dict] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    platform_info: dict = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for s in self.scenarios if s["status"] == status)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0


def _entry(result: RunResult) -> dict:
    return {
        "scenario": result.scenario, "status": result.status, "message": result.message,
        "duration_s": result.duration_s,
        "steps": [{"name": s.name, "status": s.status, "duration_s": s.duration_s,
                   "message": s.message} for s in result.steps],
    }


def summary_text(report: ConformanceReport) -> str:
    lines = [f"minikf conformance on {report.platform} ({report.started}, "
             f"{report.duration_s:.1f}s)", ""]
    for entry in report.scenarios:
        lines.append(f"  {entry['status']:8} {entry['scenario']:28} {entry['duration_s']:7.1f}s"
                     f"  {entry['message']}".rstrip())
    lines += ["", f"passed {report.count('passed')}, failed {report.count('failed')}, "
              f"skipped {report.count('skipped')}"]
    return "\n".join(lines)


def run_conformance(scenarios: list[Scenario], platform, results: Path, jobs: int = 1,
                    progress=None) -> tuple[ConformanceReport, Path]:
    """Run every scenario (skipping what the platform lacks) and write the bundle."""
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = results / f"minikf-conformance-{stamp}"
    report = ConformanceReport(platform.name, started.isoformat(timespec="seconds"),
                               versions=versions(), platform_info=platform.describe())
    clock = time.monotonic()

    def one(scenario: Scenario) -> RunResult:
        result = run_scenario(scenario, platform, work / scenario.name)
        if progress:
            progress(scenario.name, result)
        return result

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        report.scenarios = [_entry(r) for r in pool.map(one, scenarios)]
    report.duration_s = round(time.monotonic() - clock, 3)
    (work / "summary.txt").write_text(summary_text(report) + "\n")
    (work / "summary.json").write_text(json.dumps(asdict(report), indent=2))
    bundle = results / f"{work.name}.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(work / "summary.txt", arcname=f"{work.name}/summary.txt")
        tar.add(work, arcname=work.name, filter=lambda t: None if t.name.endswith(
            "/summary.txt") else t)
    return report, bundle
