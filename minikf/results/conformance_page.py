"""A conformance bundle's index.html: scenarios x platforms at a glance, what was skipped and
why, where the time went, the environment, and a summary a vendor can publish.

Built from summary.json's ConformanceReport alone; links are relative to the bundle's top folder
(each run's report.html, summary.txt, junit.xml), so the page works unpacked anywhere.
"""

from __future__ import annotations

import html
from pathlib import Path

from minikf.results.model import ConformanceEntry, ConformanceReport, PlatformSummary, Status
from minikf.results.page import (
    COLOUR,
    WIDE_PALETTE,
    axis,
    badge,
    chart,
    key_values,
    metric,
    page,
    seconds,
    table,
)
from minikf.runtime import files

_TINT = {"passed": "#e8f5e9", "failed": "#ffebee", "timeout": "#ffebee", "skipped": "#f3f3f3",
         "interrupted": "#fff3e0"}


def _platforms(report: ConformanceReport) -> list[PlatformSummary]:
    return report.platforms or [PlatformSummary(report.platform, report.started, report.duration_s,
                                                report.versions, report.platform_info)]


def _entries(report: ConformanceReport) -> dict[tuple[str, str], ConformanceEntry]:
    return {(e.scenario, e.platform or report.platform): e for e in report.scenarios}


def _scenarios(report: ConformanceReport) -> list[str]:
    return list(dict.fromkeys(e.scenario for e in report.scenarios))


def _environment_line(p: PlatformSummary) -> str:
    """minikf 0.1.0, kfp 2.7, kserve 0.14, torch 2.13 on kubernetes v1.24 (context/namespace)."""
    v = p.versions
    parts = [f"{k} {v[k]}" for k in ("minikf", "kfp", "kserve", "torch") if v.get(k)]
    info = p.platform_info
    where = p.name
    if info.get("kubernetes"):
        where += f" (Kubernetes {info['kubernetes']})"
    elif info.get("docker"):
        where += f" (Docker Engine {info['docker']})"
    elif info.get("host"):
        where += f" (host {info['host']}, {info.get('cpus', '?')} CPUs)"
    return f"{', '.join(parts)} on {where}"


def publishable(report: ConformanceReport) -> str:
    """A few plain sentences a vendor can paste: what passed where, on which versions."""
    lines = []
    for p in _platforms(report):
        only = p.name if len(_platforms(report)) > 1 else None
        total = sum(1 for e in report.scenarios if only is None or e.platform == only)
        others = [f"{n} {s}" + (" (a capability the platform lacks)" if s is Status.SKIPPED else "")
                  for s in Status if s is not Status.PASSED and (n := report.count(s, only))]
        lines.append(f"minikf conformance on {p.name}: {report.count(Status.PASSED, only)} of "
                     f"{total} scenarios passed{''.join(', ' + o for o in others)}"
                     f" ({p.started}, {seconds(p.duration_s)}). Environment: {_environment_line(p)}.")
    return "\n".join(lines)


def _cell(entry: ConformanceEntry | None) -> str:
    if entry is None:
        return '<td class="muted">not run</td>'
    status = str(entry.status)
    parts = [badge(entry.status)]
    if entry.status is not Status.SKIPPED:
        parts.append(f"<b>{seconds(entry.duration_s)}</b>")
    if entry.key_metrics:
        parts.append("<br>" + "<br>".join(
            f'<span class="muted">{html.escape(k)}</span> {html.escape(metric(k.rsplit(".", 1)[-1], v))}'
            for k, v in entry.key_metrics.items()))
    if entry.message:
        parts.append(f'<br><small>{html.escape(entry.message)}</small>')
    if entry.results:
        href = html.escape(f"{entry.results}/report.html")
        parts.append(f'<br><a href="{href}">report</a> · '
                     f'<a href="{html.escape(entry.results)}/logs/">logs</a>')
    return f'<td style="background:{_TINT.get(status, "#fff")}">{" ".join(parts)}</td>'


def matrix(report: ConformanceReport) -> str:
    names = [p.name for p in _platforms(report)]
    by = _entries(report)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><th>{html.escape(s)}</th>" + "".join(_cell(by.get((s, n))) for n in names) + "</tr>"
        for s in _scenarios(report))
    return f'<table id="matrix"><tr><th>scenario</th>{head}</tr>{rows}</table>'


def time_chart(report: ConformanceReport) -> str:
    """Seconds per scenario (and platform), stacked by step kind: where the time went."""
    names = [p.name for p in _platforms(report)]
    by = _entries(report)
    rows = [(s, n, by[(s, n)]) for s in _scenarios(report) for n in names
            if (s, n) in by and by[(s, n)].status is not Status.SKIPPED]
    if not rows:
        return ""
    kinds = list(dict.fromkeys(st.kind or st.name for _, _, e in rows for st in e.steps))
    datasets = []
    for i, kind in enumerate(kinds):
        data = [round(sum(st.duration_s for st in e.steps if (st.kind or st.name) == kind), 3)
                for _, _, e in rows]
        datasets.append({"label": kind, "data": data,
                         "backgroundColor": WIDE_PALETTE[i % len(WIDE_PALETTE)],
                         "stack": "steps"})
    labels = [f"{s} ({n})" if len(names) > 1 else s for s, n, _ in rows]
    config = {"type": "bar", "data": {"labels": labels, "datasets": datasets},
              "options": {"indexAxis": "y",
                          "scales": {"x": axis("seconds", stacked=True),
                                     "y": {"stacked": True}}}}
    return chart("scenario-times", config, "Each bar: one scenario's run, its steps by kind.",
                 height=80 + 30 * len(rows), wide=True)


def _status_chart(report: ConformanceReport) -> str:
    names = [p.name for p in _platforms(report)]
    statuses = [s for s in Status if report.count(s)]
    datasets = [{"label": str(s), "backgroundColor": COLOUR.get(str(s), "#555"), "stack": "s",
                 "data": [report.count(s, n if len(names) > 1 else None) for n in names]}
                for s in statuses]
    config = {"type": "bar", "data": {"labels": names, "datasets": datasets}, "valueLabels": True,
              "options": {"indexAxis": "y", "plugins": {"datalabels": {"color": "#fff"}},
                          "scales": {"x": axis("scenarios", stacked=True, ticks={"precision": 0}),
                                     "y": {"stacked": True}}}}
    return chart("status-counts", config, height=70 + 40 * len(names))


def skipped(report: ConformanceReport) -> str:
    rows = [[html.escape(e.scenario), html.escape(e.platform or report.platform),
             html.escape(e.message)] for e in report.scenarios if e.status is Status.SKIPPED]
    return table(["scenario", "platform", "why"], rows) if rows else "<p>Nothing was skipped.</p>"


def environment(report: ConformanceReport) -> str:
    platforms = _platforms(report)
    parts = []
    for title, attr in (("Software", "versions"), ("Platform", "platform_info")):
        keys = list(dict.fromkeys(k for p in platforms for k, _ in key_values(getattr(p, attr))))
        values = [dict(key_values(getattr(p, attr))) for p in platforms]
        rows = [[html.escape(k), *(html.escape(v.get(k, "-")) for v in values)] for k in keys]
        parts.append(f"<h3>{title}</h3>" + table(["", *(html.escape(p.name) for p in platforms)],
                                                 rows))
    return "".join(parts)


def render(report: ConformanceReport) -> str:
    names = ", ".join(p.name for p in _platforms(report))
    body = (
        f"<h1>minikf conformance on {html.escape(names)} {badge(report.status)}</h1>"
        f'<p class="muted">started {html.escape(report.started)}, {seconds(report.duration_s)} '
        f"in all, results schema {html.escape(report.schema_version)} · "
        f'<a href="summary.txt">summary.txt</a> · <a href="summary.json">summary.json</a> · '
        f'<a href="junit.xml">junit.xml</a></p>'
        f'<h2>Summary</h2><pre id="publishable">{html.escape(publishable(report))}</pre>'
        f"<div class='charts'>{_status_chart(report)}</div>"
        f"<h2>Scenarios</h2>{matrix(report)}"
        f"<h2>Where the time went</h2><div class='charts'>{time_chart(report)}</div>"
        f"<h2>Skipped</h2>{skipped(report)}"
        f"<h2>Environment</h2>{environment(report)}"
    )
    return page(f"minikf conformance on {names} ({report.status})", body)


def write_index(report: ConformanceReport, folder: Path) -> Path:
    path = Path(folder) / "index.html"
    files.write_text(path, render(report))
    return path
