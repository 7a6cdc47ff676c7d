"""Per-step and per-run results, written as results.json, junit.xml and report.html."""

from __future__ import annotations

import html
import json
import platform as host_platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from xml.etree import ElementTree as ET

STATUSES = ("passed", "failed", "skipped", "timeout")
# HTML fragments other tools drop beside a report (e.g. `minikf bench`), included in report.html.
SECTIONS_DIR = "sections"


@dataclass
class StepResult:
    name: str
    kind: str
    status: str = "skipped"
    started: str = ""  # UTC, ISO 8601 with milliseconds
    duration_s: float = 0.0
    message: str = ""
    metrics: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    log: str | None = None


@dataclass
class RunResult:
    run_id: str
    scenario: str
    platform: str
    status: str = "skipped"
    message: str = ""
    started: str = ""
    duration_s: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    platform_info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "passed"


def versions() -> dict[str, str]:
    """Versions of what ran, so a report says exactly what was validated."""
    found = {"python": host_platform.python_version()}
    for dist in ("minikf", "kfp", "kserve", "torch", "pydantic"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_json(result: RunResult, path: Path) -> None:
    path.write_text(json.dumps(asdict(result), indent=2, default=str))


def load_json(path: Path) -> RunResult:
    """A results.json back into a RunResult (to write its report again)."""
    data = json.loads(Path(path).read_text())
    step_fields, run_fields = set(StepResult.__dataclass_fields__), set(RunResult.__dataclass_fields__)
    steps = [StepResult(**{k: v for k, v in step.items() if k in step_fields})
             for step in data.pop("steps", [])]
    return RunResult(**{k: v for k, v in data.items() if k in run_fields}, steps=steps)


def _extra_sections(results_dir: Path) -> str:
    folder = results_dir / SECTIONS_DIR
    return "".join(p.read_text() for p in sorted(folder.glob("*.html"))) if folder.is_dir() else ""


def write_junit(result: RunResult, path: Path) -> None:
    counts = {s: sum(1 for st in result.steps if st.status == s) for s in STATUSES}
    suite = ET.Element(
        "testsuite", name=result.scenario, tests=str(len(result.steps)),
        failures=str(counts["failed"]), errors=str(counts["timeout"]),
        skipped=str(counts["skipped"]), time=f"{result.duration_s:.3f}",
    )
    for step in result.steps:
        case = ET.SubElement(
            suite, "testcase", classname=f"{result.platform}.{result.scenario}",
            name=step.name, time=f"{step.duration_s:.3f}",
        )
        if step.status == "failed":
            ET.SubElement(case, "failure", message=step.message).text = step.message
        elif step.status == "timeout":
            ET.SubElement(case, "error", message=step.message, type="timeout").text = step.message
        elif step.status == "skipped":
            ET.SubElement(case, "skipped", message=step.message)
        if step.log:
            ET.SubElement(case, "system-out").text = f"log: {step.log}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _svg_line(name: str, values: list[float], width: int = 360, height: int = 160) -> str:
    """A dependency-free inline SVG line chart, so the report needs no network to view."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step_x = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step_x:.1f},{height - (v - lo) / span * (height - 20) - 10:.1f}"
        for i, v in enumerate(values)
    )
    return (
        f'<figure><svg width="{width}" height="{height}" role="img" aria-label="{html.escape(name)}">'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{points}"/></svg>'
        f"<figcaption>{html.escape(name)}: {lo:.4g} .. {hi:.4g} ({len(values)} points)"
        "</figcaption></figure>"
    )


def _confusion_table(step: StepResult) -> str:
    """A step output `confusion` (rows: true class, columns: predicted) as an HTML table."""
    matrix = step.outputs.get("confusion")
    if not matrix:
        return ""
    head = "".join(f"<th>{j}</th>" for j in range(len(matrix[0])))
    body = "".join(
        f"<tr><th>{i}</th>" + "".join(
            f'<td style="{"font-weight:bold" if i == j else ""}">{v}</td>'
            for j, v in enumerate(row)) + "</tr>"
        for i, row in enumerate(matrix)
    )
    return (f"<h3>{html.escape(step.name)}: confusion matrix (rows true, columns predicted)"
            f"</h3><table><tr><th></th>{head}</tr>{body}</table>")


def write_html(result: RunResult, path: Path) -> None:
    colour = {"passed": "#2e7d32", "failed": "#c62828", "timeout": "#c62828", "skipped": "#777"}
    rows, plots = [], []
    for step in result.steps:
        metrics = ", ".join(f"{k}={v}" for k, v in step.metrics.items())
        rows.append(
            f"<tr><td>{html.escape(step.name)}</td><td>{html.escape(step.kind)}</td>"
            f'<td style="color:{colour.get(step.status, "#000")}">{step.status}</td>'
            f"<td>{step.duration_s:.2f}</td><td>{html.escape(metrics)}</td>"
            f"<td>{html.escape(step.message)}</td></tr>"
        )
        for name, values in step.series.items():
            plots.append(_svg_line(f"{step.name}: {name}", [float(v) for v in values]))
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>minikf: {html.escape(result.scenario)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px}}
table{{border-collapse:collapse}}figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>{html.escape(result.scenario)} on {html.escape(result.platform)}:
<span style="color:{colour.get(result.status, "#000")}">{result.status}</span></h1>
<p>run {html.escape(result.run_id)}, started {html.escape(result.started)},
{result.duration_s:.1f}s. {html.escape(result.message)}</p>
<table><tr><th>step</th><th>kind</th><th>status</th><th>seconds</th><th>metrics</th>
<th>message</th></tr>{''.join(rows)}</table>
<h2>Plots</h2>{''.join(plots) or '<p>No step produced a series.</p>'}
{''.join(_confusion_table(step) for step in result.steps)}
{_extra_sections(path.parent)}
<h2>Versions</h2><pre>{html.escape(json.dumps(result.versions, indent=2))}</pre>
</body></html>"""
    path.write_text(page)


def write_all(result: RunResult, results_dir: Path) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, results_dir / "results.json")
    write_junit(result, results_dir / "junit.xml")
    write_html(result, results_dir / "report.html")
