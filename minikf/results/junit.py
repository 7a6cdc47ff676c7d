"""junit.xml: testsuites as CI systems render them (GitLab, Jenkins, GitHub test reporters).

A run is one testsuite, a step one testcase; a conformance bundle is one testsuite per platform
and scenario. Each suite carries properties: the platform, the run and the versions of what ran.
failed -> <failure>; skipped -> <skipped>; any other status but passed (timeout, a step stopped
from outside) -> <error> of that type, as JUnit readers count a test that could not finish.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from minikf.results.model import ConformanceReport, RunResult, Status
from minikf.results.page import key_values
from minikf.runtime import files

_CLEAN = (Status.PASSED, Status.FAILED, Status.SKIPPED)


def _suite(parent: ET.Element, name: str, classname: str, steps, duration_s: float,
           properties: list[tuple[str, str]], logs: dict[str, str] | None = None) -> ET.Element:
    counts = {s: sum(1 for st in steps if st.status is s) for s in Status}
    errors = sum(n for s, n in counts.items() if s not in _CLEAN)
    suite = ET.SubElement(
        parent, "testsuite", name=name, tests=str(len(steps)),
        failures=str(counts[Status.FAILED]), errors=str(errors),
        skipped=str(counts[Status.SKIPPED]), time=f"{duration_s:.3f}")
    props = ET.SubElement(suite, "properties")
    for key, value in properties:
        ET.SubElement(props, "property", name=key, value=value)
    for step in steps:
        case = ET.SubElement(suite, "testcase", classname=classname, name=step.name,
                             time=f"{step.duration_s:.3f}")
        if step.status is Status.FAILED:
            ET.SubElement(case, "failure", message=step.message).text = step.message
        elif step.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=step.message)
        elif step.status is not Status.PASSED:  # timed out, interrupted: it could not finish
            ET.SubElement(case, "error", message=step.message,
                          type=step.status.value).text = step.message
        if logs and logs.get(step.name):
            ET.SubElement(case, "system-out").text = f"log: {logs[step.name]}"
    return suite


def _write(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    files.write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))


def write_junit(result: RunResult, path: Path) -> None:
    root = ET.Element("testsuites", name=f"minikf {result.scenario} on {result.platform}")
    properties = [("platform", result.platform), ("run_id", result.run_id),
                  ("started", result.started),
                  *((f"version.{k}", v) for k, v in key_values(result.versions)),
                  *((f"platform.{k}", v) for k, v in key_values(result.platform_info))]
    _suite(root, result.scenario, f"{result.platform}.{result.scenario}", result.steps,
           result.duration_s, properties, {s.name: s.log for s in result.steps if s.log})
    _write(root, path)


def write_bundle_junit(report: ConformanceReport, path: Path) -> None:
    """One testsuite per platform and scenario, named platform/scenario."""
    root = ET.Element("testsuites", name="minikf conformance",
                      time=f"{report.duration_s:.3f}")
    platforms = {p.name: p for p in report.platforms}
    for entry in report.scenarios:
        platform = entry.platform or report.platform
        info = platforms.get(platform)
        versions = info.versions if info else report.versions
        platform_info = info.platform_info if info else report.platform_info
        properties = [("platform", platform), ("scenario", entry.scenario),
                      ("status", str(entry.status)), ("message", entry.message),
                      *((f"metric.{k}", repr(v)) for k, v in entry.key_metrics.items()),
                      *((f"version.{k}", v) for k, v in key_values(versions)),
                      *((f"platform.{k}", v) for k, v in key_values(platform_info))]
        _suite(root, f"{platform}/{entry.scenario}", f"{platform}.{entry.scenario}",
               entry.steps, entry.duration_s, properties)
    _write(root, path)
