"""The run report's charts as Chart.js configurations, built from a RunResult's steps.

Each function returns HTML (page.chart: a canvas and its JSON), or "" when the step has
nothing to draw. Series named `rankN.NAME` are worker N's own NAME (train: per worker).
"""

from __future__ import annotations

import html
import re
from datetime import datetime

import numpy as np

from minikf.results.model import RunResult, StepResult
from minikf.results.page import COLOUR, PALETTE, axis, chart, number

_RANK = re.compile(r"^rank(\d+)\.(.+)$")
# What a series measures, for its axis title; a name not listed shows as it is.
TITLES = {"loss": "loss (cross-entropy)", "accuracy": "training accuracy (%)",
          "images_per_s": "throughput (images/s)", "seconds": "epoch time (s)",
          "latency_ms": "latency (ms)"}


def _time(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return None


def timeline(result: RunResult, where: dict[str, str]) -> str:
    """The steps as a Gantt chart: when each started and ended, coloured by status."""
    started = [(s, t) for s in result.steps if (t := _time(s.started)) is not None]
    if not started:
        return ""
    zero = min(t for _, t in started)
    labels = [f"{s.name} ({where.get(s.name, s.kind)})" for s, _ in started]
    bars = [[round(t - zero, 3), round(t - zero + s.duration_s, 3)] for s, t in started]
    config = {
        "type": "bar",
        "data": {"labels": labels, "datasets": [{
            "label": "step", "data": bars, "borderSkipped": False, "borderRadius": 3,
            "backgroundColor": [COLOUR.get(str(s.status), "#555") for s, _ in started]}]},
        "options": {"indexAxis": "y", "plugins": {"legend": {"display": False}},
                    "scales": {"x": axis("seconds since the first step started", min=0)}},
    }
    total = max(b[1] for b in bars)
    longest = max(started, key=lambda st: st[0].duration_s)[0]
    caption = (f"Where the time went: {html.escape(longest.name)} took "
               f"{longest.duration_s / total * 100:.0f} % of {total:.1f} s." if total else "")
    return chart("timeline", config, caption, height=60 + 32 * len(started), wide=True)


def _by_rank(series: dict) -> tuple[dict[str, list], dict[str, dict[int, list]]]:
    """Series split into the job's own (loss, ...) and each worker's ({name: {rank: values}})."""
    overall: dict[str, list] = {}
    ranks: dict[str, dict[int, list]] = {}
    for name, values in series.items():
        match = _RANK.match(name)
        if match:
            ranks.setdefault(match.group(2), {})[int(match.group(1))] = values
        else:
            overall[name] = values
    return overall, ranks


def _line(label: str, values: list, colour: str, dashed: bool = False, scale: float = 1.0,
          width: int = 2) -> dict:
    return {"label": label, "data": [None if v is None else v * scale for v in values],
            "borderColor": colour, "backgroundColor": colour, "pointRadius": 3,
            "borderWidth": width, "tension": 0.15, **({"borderDash": [5, 4]} if dashed else {})}


def training(step: StepResult, test_accuracy: float | None = None) -> list[str]:
    """Per-epoch curves: loss, accuracy (with the test accuracy as a line), throughput and
    epoch time, each with every worker's own line where the job had several."""
    overall, ranks = _by_rank(step.series)
    epochs = max((len(v) for v in step.series.values()), default=0)
    if epochs == 0:
        return []
    charts = []
    for name in [*overall, *(n for n in ranks if n not in overall)]:
        scale = 100.0 if name == "accuracy" else 1.0
        datasets = []
        if name in overall:
            datasets.append(_line("all workers" if ranks.get(name) else name, overall[name],
                                  PALETTE[0], scale=scale, width=3))
        for i, (rank, values) in enumerate(sorted(ranks.get(name, {}).items())):
            datasets.append(_line(f"worker {rank}", values, PALETTE[(i + 1) % len(PALETTE)],
                                  dashed=True, scale=scale))
        if name == "accuracy" and test_accuracy is not None:
            datasets.append(_line("test accuracy (evaluate)", [test_accuracy] * epochs,
                                  PALETTE[3], dashed=True, scale=100.0) | {"pointRadius": 0})
        config = {"type": "line",
                  "data": {"labels": list(range(1, epochs + 1)), "datasets": datasets},
                  "options": {"scales": {"x": axis("epoch"),
                                         "y": axis(TITLES.get(name, name))},
                              "plugins": {"legend": {"display": len(datasets) > 1}}}}
        charts.append(chart(f"{step.name}-{name}", config, _trend(name, overall.get(name))))
    return charts


def _trend(name: str, values: list | None) -> str:
    if not values or len(values) < 2:
        return ""
    first, last = values[0], values[-1]
    if name == "loss":
        return f"loss {number(first)} → {number(last)} over {len(values)} epochs"
    if name == "accuracy":
        return f"training accuracy {first * 100:.1f} % → {last * 100:.1f} %"
    if name == "images_per_s":
        return f"median {number(float(np.median(values)))} images/s"
    return ""


def _heat(rate: float, diagonal: bool) -> str:
    """Diagonal cells blue by recall; off-diagonal red by how often the row goes there."""
    alpha = 0.08 + 0.92 * min(max(rate, 0.0), 1.0)
    return f"rgba(31,119,180,{alpha:.3f})" if diagonal else f"rgba(214,39,40,{min(alpha * 2, 1):.3f})"


def confusion(step: StepResult, classes: list[str]) -> str:
    """The confusion matrix as a heat map (rows: true class, columns: predicted), with counts."""
    matrix = step.outputs.get("confusion")
    if not matrix:
        return ""
    n = len(matrix)
    names = classes if len(classes) == n else [str(i) for i in range(n)]
    points, colours = [], []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, count in enumerate(row):
            points.append({"x": names[j], "y": names[i], "v": count})
            colours.append(_heat(count / total, i == j) if count else "rgba(0,0,0,0.03)")
    config = {
        "type": "matrix", "grid": [n, n], "valueLabels": True,
        "data": {"datasets": [{"label": "images", "data": points, "backgroundColor": colours,
                               "borderWidth": 0,
                               "datalabels": {"color": "#111", "font": {"size": 11}}}]},
        "options": {
            "plugins": {"legend": {"display": False},
                        "datalabels": {"display": "auto"}},
            "scales": {"x": axis("predicted class", type="category", labels=names, offset=True,
                                 grid={"display": False}, ticks={"maxRotation": 45}),
                       "y": axis("true class", type="category", labels=names, offset=True,
                                 reverse=False, grid={"display": False})}},
    }
    return chart(f"{step.name}-confusion", config, _confused_pairs(matrix, names),
                 height=520, wide=True)


def _confused_pairs(matrix: list[list[int]], names: list[str], top: int = 5) -> str:
    pairs = sorted(((count, i, j) for i, row in enumerate(matrix) for j, count in enumerate(row)
                    if i != j and count), reverse=True)[:top]
    if not pairs:
        return "No test image was misclassified."
    parts = [f"{html.escape(names[i])} → {html.escape(names[j])}: {count} "
             f"({count / (sum(matrix[i]) or 1) * 100:.0f} % of {html.escape(names[i])})"
             for count, i, j in pairs]
    return "Most confused (true → predicted): " + "; ".join(parts) + "."


def latency(step: StepResult) -> str:
    """A histogram of every request's latency (one colour per protocol), and its percentiles."""
    found = {k: [float(v) for v in vals] for k, vals in step.series.items()
             if k.endswith("latency_ms") and vals}
    if not found:
        return ""
    everything = np.concatenate([np.asarray(v) for v in found.values()])
    hi = float(np.percentile(everything, 99.5)) if len(everything) > 20 else float(everything.max())
    edges = np.linspace(0.0, max(hi, 1e-3) * 1.05, 31)
    labels = [f"{(a + b) / 2:.2f}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    datasets = []
    for i, (name, values) in enumerate(found.items()):
        counts, _ = np.histogram(np.clip(values, 0, edges[-1]), bins=edges)
        datasets.append({"label": name.replace("_latency_ms", "").replace("latency_ms", "all")
                         .upper(), "data": counts.tolist(), "backgroundColor": PALETTE[i],
                         "barPercentage": 1.0, "categoryPercentage": 1.0, "stack": "s"})
    config = {"type": "bar", "data": {"labels": labels, "datasets": datasets},
              "options": {"scales": {"x": axis("latency (ms), bin centre", stacked=True),
                                     "y": axis("requests", stacked=True)}}}
    q = {p: float(np.percentile(everything, p)) for p in (50, 90, 95, 99)}
    caption = (f"{len(everything)} requests: p50 {q[50]:.2f} ms, p90 {q[90]:.2f} ms, "
               f"p95 {q[95]:.2f} ms, p99 {q[99]:.2f} ms, max {everything.max():.2f} ms")
    return chart(f"{step.name}-latency", config, caption, height=280, wide=True)


def series(step: StepResult, name: str, values: list) -> str:
    """Any other series a step recorded: one line, x the point's position."""
    config = {"type": "line",
              "data": {"labels": list(range(1, len(values) + 1)),
                       "datasets": [_line(name, values, PALETTE[0])]},
              "options": {"plugins": {"legend": {"display": False}},
                          "scales": {"x": axis("point"), "y": axis(TITLES.get(name, name))}}}
    return chart(f"{step.name}-{name}", config, f"{html.escape(step.name)}: {html.escape(name)}")
