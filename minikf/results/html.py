"""report.html: a self-contained page (inline SVG, no network) a person reads after a run."""

from __future__ import annotations

import html
import json
from pathlib import Path

from minikf.results.model import RunResult, Status, StepResult
from minikf.runtime import files

# HTML fragments other tools drop beside a report (e.g. `minikf bench`), included in report.html.
SECTIONS_DIR = "sections"
_COLOUR = {Status.PASSED: "#2e7d32", Status.FAILED: "#c62828", Status.TIMEOUT: "#c62828",
           Status.SKIPPED: "#777", Status.INTERRUPTED: "#ef6c00"}


def _extra_sections(results_dir: Path) -> str:
    folder = results_dir / SECTIONS_DIR
    return "".join(p.read_text() for p in sorted(folder.glob("*.html"))) if folder.is_dir() else ""


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
    rows, plots = [], []
    for step in result.steps:
        metrics = ", ".join(f"{k}={v}" for k, v in step.metrics.items())
        rows.append(
            f"<tr><td>{html.escape(step.name)}</td><td>{html.escape(step.kind)}</td>"
            f'<td style="color:{_COLOUR[step.status]}">{step.status}</td>'
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
<span style="color:{_COLOUR[result.status]}">{result.status}</span></h1>
<p>run {html.escape(result.run_id)}, started {html.escape(result.started)},
{result.duration_s:.1f}s. {html.escape(result.message)}</p>
<table><tr><th>step</th><th>kind</th><th>status</th><th>seconds</th><th>metrics</th>
<th>message</th></tr>{''.join(rows)}</table>
<h2>Plots</h2>{''.join(plots) or '<p>No step produced a series.</p>'}
{''.join(_confusion_table(step) for step in result.steps)}
{_extra_sections(path.parent)}
<h2>Versions</h2><pre>{html.escape(json.dumps(result.versions, indent=2))}</pre>
</body></html>"""
    files.write_text(path, page)
