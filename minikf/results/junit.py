"""junit.xml: one testsuite per run, one testcase per step, as CI systems render it.

failed -> <failure>; timeout and interrupted -> <error> (type "timeout" / "interrupted"), as
JUnit readers count a test that could not finish; skipped -> <skipped>."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from minikf.results.model import RunResult, Status
from minikf.runtime import files


def write_junit(result: RunResult, path: Path) -> None:
    counts = {s: sum(1 for st in result.steps if st.status is s) for s in Status}
    suite = ET.Element(
        "testsuite", name=result.scenario, tests=str(len(result.steps)),
        failures=str(counts[Status.FAILED]), errors=str(counts[Status.TIMEOUT] + counts[Status.INTERRUPTED]),
        skipped=str(counts[Status.SKIPPED]), time=f"{result.duration_s:.3f}",
    )
    for step in result.steps:
        case = ET.SubElement(
            suite, "testcase", classname=f"{result.platform}.{result.scenario}",
            name=step.name, time=f"{step.duration_s:.3f}",
        )
        if step.status is Status.FAILED:
            ET.SubElement(case, "failure", message=step.message).text = step.message
        elif step.status in (Status.TIMEOUT, Status.INTERRUPTED):
            ET.SubElement(case, "error", message=step.message,
                          type=step.status.value).text = step.message
        elif step.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=step.message)
        if step.log:
            ET.SubElement(case, "system-out").text = f"log: {step.log}"
    root = ET.Element("testsuites")
    root.append(suite)
    with files.atomic_open(path, "wb") as out:
        ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
