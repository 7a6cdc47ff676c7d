"""What every minikf HTML page shares: the skeleton, the inlined chart library, the figures.

A page is self-contained: the vendored Chart.js build (assets/, with its license) is inlined,
and each chart is a `<canvas>` beside its Chart.js configuration as JSON, which a few lines of
start-up code hand to the library. Python decides what a chart shows; the library draws it.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from pathlib import Path

from minikf.results.model import Status

ASSETS = Path(__file__).parent / "assets"
SCRIPTS = ("chart.umd.min.js", "chartjs-chart-matrix.min.js", "chartjs-plugin-datalabels.min.js")
COLOUR = {"passed": "#2e7d32", "failed": "#c62828", "timeout": "#c62828", "skipped": "#8a8a8a",
          "interrupted": "#ef6c00"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
# For charts with more series than that (the bundle's step kinds): the ten above, then lighter.
WIDE_PALETTE = [*PALETTE, "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
                "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]

# Hands each chart's JSON to Chart.js. Matrix cells need their size from the chart area, which
# only a function can give; everything else is plain configuration.
_START = """
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
function minikfCharts(root) {
  for (const spec of root.querySelectorAll('script[type="application/json"][data-chart]')) {
    const canvas = document.getElementById(spec.dataset.chart);
    if (!canvas || Chart.getChart(canvas)) continue;
    const {valueLabels, grid, ...config} = JSON.parse(spec.textContent);
    if (grid) {
      const labels = config.options.plugins.datalabels || {};
      config.options.plugins.datalabels = {...labels, formatter: (p) => p.v || ''};
      for (const ds of config.data.datasets) {
        ds.width = ({chart}) => (chart.chartArea || {}).width / grid[0] - 1;
        ds.height = ({chart}) => (chart.chartArea || {}).height / grid[1] - 1;
      }
    }
    new Chart(canvas, {...config, plugins: valueLabels ? [ChartDataLabels] : []});
  }
}
document.addEventListener('DOMContentLoaded', () => minikfCharts(document));
"""

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
 background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:1.5em 2em}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;background:#fff}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:600}.badge{display:inline-block;padding:2px 10px;border-radius:12px;
 color:#fff;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:1em}
figure.chart{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:0;padding:.6em;
 flex:1 1 360px;min-width:320px}
figure.chart.wide{flex-basis:100%}
figure.chart>div{position:relative}
figcaption{font-size:.9em;color:#555;margin-top:.3em}
.grid{display:flex;flex-wrap:wrap;gap:.6em}
.grid figure{margin:0;background:#fff;border:1px solid #e3e3e3;padding:4px;text-align:center;
 font-size:.75em;width:96px}
.grid img{width:84px;height:84px;image-rendering:pixelated;display:block;margin:0 auto}
.muted{color:#777}.bad{color:#c62828}.good{color:#2e7d32}
pre#publishable{white-space:pre-wrap;background:#fff;border:1px solid #ddd;padding:.7em}
details pre{max-height:30em;overflow:auto;background:#fff;border:1px solid #ddd;padding:.5em}
nav a{margin-right:1em}
"""


@functools.cache
def _asset(name: str) -> str:
    """A vendored script, less its source-map comment (a map file the page does not ship)."""
    text = (ASSETS / name).read_text(encoding="utf-8")
    return re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", text)


def scripts() -> str:
    """The chart library and the start-up code, inline."""
    code = "".join(f"<script>{_asset(name)}</script>\n" for name in SCRIPTS)
    return code + f"<script>{_START}</script>"


def page(title: str, body: str, head: str = "") -> str:
    """A whole HTML document: no external reference at all."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style>{head}</head>"
            f"<body><main>{body}</main>{scripts()}</body></html>")


def chart(chart_id: str, config: dict, caption: str = "", height: int = 260,
          wide: bool = False) -> str:
    """A canvas and its Chart.js configuration. Two keys of ours ride along: `valueLabels`
    (true: the datalabels plugin writes each value) and `grid` ([columns, rows] of a matrix)."""
    data = json.dumps(config, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    cls = "chart wide" if wide else "chart"
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure class="{cls}"><div style="height:{height}px">'
            f'<canvas id="{html.escape(chart_id)}" role="img" aria-label="{html.escape(chart_id)}">'
            f'</canvas></div><script type="application/json" data-chart="{html.escape(chart_id)}">'
            f"{data}</script>{cap}</figure>")


def axis(title: str, **extra) -> dict:
    return {"title": {"display": True, "text": title}, **extra}


def badge(status: Status | str) -> str:
    s = str(status)
    return f'<span class="badge" style="background:{COLOUR.get(s, "#555")}">{html.escape(s)}</span>'


def status_text(status: Status | str) -> str:
    s = str(status)
    return f'<span class="status" style="color:{COLOUR.get(s, "#555")}">{html.escape(s)}</span>'


def seconds(value: float) -> str:
    """1.23 s, 45.6 s, 2 min 03 s, 1 h 02 min: how long, as a person says it."""
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60):02d} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"


def number(value) -> str:
    """A metric rounded for people (results.json keeps every digit): ints as they are, fractions
    of one that name accuracies as percentages, everything else to 3 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def metric(name: str, value) -> str:
    """A named metric with its unit, from the name's convention (accuracy, *_ms, *_s, *_per_s)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "accuracy" in name or name in ("agreement",) or name.endswith("_ratio"):
            if 0 <= value <= 1:
                return f"{value * 100:.1f} %"
        if name.endswith("_ms"):
            return f"{number(value)} ms"
        if name.endswith("_per_s"):
            unit = name.removesuffix("_per_s").rsplit("_", 1)[-1]  # images_per_s -> images/s
            return f"{number(value)} {unit}/s"
        if name.endswith("_s") or name == "seconds":
            return seconds(float(value))
        if name.endswith("_mb"):
            return f"{number(value)} MiB"
        if name == "bytes":
            return human_bytes(int(value))
    return number(value)


def human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are HTML already (escape what came from outside before)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{th}</tr>{body}</table>'


def key_values(pairs: dict, prefix: str = "") -> list[tuple[str, str]]:
    """A nested dict flattened to (dotted key, text) for a versions table."""
    found: list[tuple[str, str]] = []
    for key, value in pairs.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found += key_values(value, f"{name}.")
        elif isinstance(value, list):
            found.append((name, ", ".join(str(v) for v in value)))
        elif value is not None:
            found.append((name, str(value)))
    return found
