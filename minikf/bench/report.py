"""What every benchmark does with its figures: metadata, --save, --compare, the HTML section.

A result is one JSON object: the benchmark's own figures at the top level plus `benchmark`,
`date` and `machine`. `--save` writes it to perf/results/<machine>/<benchmark>-<date>.json;
`--compare OLD.json` checks the figures listed in KEY_FIGURES against an earlier result and
reports a regression where one got worse by more than the threshold.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from minikf.runtime import files

# For each benchmark: (dotted path in the JSON, True if higher is better). A path whose last
# part ends in "_pct" is compared in percentage points, not relative change.
KEY_FIGURES: dict[str, list[tuple[str, bool]]] = {
    "serve": [("targets.minikf.rps", True), ("targets.minikf.p99_ms", False),
              ("ratio_rps_minikf_vs_stock", True), ("ratio_rps_minikf_vs_ceiling", True),
              ("targets.minikf.peak_rss_mb", False)],
    "train": [("harness_images_per_s", True), ("harness_overhead_pct", False),
              ("scaling_efficiency_2", True), ("harness_peak_rss_mb", False)],
    "journey": [("wall_s", False), ("overhead_pct", False), ("overhead_s", False),
                ("minikf_overhead_pct", False)],
}
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"host": socket.gethostname(), "cpu": cpu, "cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()}


def finish(benchmark: str, figures: dict) -> dict:
    """The figures plus what a later reader needs to trust and compare them."""
    from minikf.results import versions

    return {"benchmark": benchmark,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "versions": versions(), **figures}


def save(result: dict, root: Path | None = None) -> Path:
    """perf/results/<machine>/<benchmark>-<date>.json (repository's perf/ if there, else ./perf)."""
    if root is None:
        root = REPO_ROOT / "perf" / "results" if (REPO_ROOT / "perf").is_dir() else Path("perf/results")
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", result["machine"]["host"]) or "unknown"
    stamp = result["date"].replace(":", "").replace("+0000", "Z")
    path = root / host / f"{result['benchmark']}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(path, json.dumps(result, indent=2))
    return path


def _get(data: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data if isinstance(data, (int, float)) and not isinstance(data, bool) else None


@dataclass
class Change:
    figure: str
    old: float
    new: float
    change: float  # relative (0.1 = +10%) or, for *_pct figures, percentage points
    points: bool
    regression: bool

    def line(self) -> str:
        delta = f"{self.change:+.1f} pts" if self.points else f"{self.change * 100:+.1f}%"
        verdict = "REGRESSION" if self.regression else "ok"
        return f"{self.figure:36} {self.old:>12.4g} {self.new:>12.4g} {delta:>11}  {verdict}"


def compare(new: dict, old: dict, threshold: float = 0.10) -> list[Change]:
    """Each key figure present in both; a regression is a move the wrong way beyond threshold."""
    if old.get("benchmark") != new.get("benchmark"):
        from minikf.runtime.errors import MinikfError

        raise MinikfError(f"cannot compare a {new.get('benchmark')!r} result with a "
                          f"{old.get('benchmark')!r} result", 2)
    changes = []
    for figure, higher_better in KEY_FIGURES.get(new["benchmark"], []):
        a, b = _get(old, figure), _get(new, figure)
        if a is None or b is None:
            continue
        points = figure.endswith("_pct")
        if points:
            change = b - a
            worse = -change if higher_better else change
            regression = worse > threshold * 100
        else:
            change = (b - a) / a if a else 0.0
            worse = -change if higher_better else change
            regression = worse > threshold
        changes.append(Change(figure, a, b, change, points, regression))
    return changes


def load_result(path: Path) -> dict:
    from minikf.runtime.errors import MinikfError

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MinikfError(f"{path}: cannot read ({exc.strerror})", 2) from None
    except ValueError as exc:
        raise MinikfError(f"{path}: not JSON ({exc})", 2) from None
    if not isinstance(data, dict) or "benchmark" not in data:
        raise MinikfError(f"{path}: not a minikf bench result (no 'benchmark' field)", 2)
    return data


# --- HTML -------------------------------------------------------------------------------------

def _rows(pairs: list[tuple[str, object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(fmt(v))}</td></tr>"
                   for k, v in pairs if v is not None)


def _bars(chart_id: str, labels: list[str], series: dict[str, list], y_title: str,
          caption: str = "", stacked: bool = False) -> str:
    """Side-by-side (or stacked) bars, one colour per series; side by side, each value is
    written on its bar."""
    from minikf.results.page import PALETTE, axis, chart

    def rounded(values: list) -> list:
        return [round(v, 1) if isinstance(v, float) else v for v in values]

    datasets = [{"label": name, "data": rounded(values), "backgroundColor": PALETTE[i % len(PALETTE)],
                 **({"stack": "s"} if stacked else {})}
                for i, (name, values) in enumerate(series.items())]
    labels_on_bars = {"display": False} if stacked else {"anchor": "end", "align": "end", "clamp": True}
    config = {"type": "bar", "data": {"labels": labels, "datasets": datasets}, "valueLabels": True,
              "options": {"plugins": {"datalabels": labels_on_bars,
                                      "legend": {"display": len(datasets) > 1}},
                          "layout": {"padding": {"top": 18}},
                          "scales": {"x": {"stacked": stacked},
                                     "y": axis(y_title, beginAtZero=True, stacked=stacked)}}}
    return chart(chart_id, config, caption)


def _charts(result: dict) -> str:
    """The benchmark's figures against its baseline, as bars."""
    bench = result.get("benchmark", "?")
    if bench == "serve" and result.get("targets"):
        targets = result["targets"]
        names = list(targets)
        return (_bars("bench-serve-rps", names, {"requests/s": [targets[n].get("rps", 0) for n in names]},
                      "requests per second", "minikf against a stock KServe ModelServer and a "
                      "trivial HTTP handler (the ceiling), measured in the same run")
                + _bars("bench-serve-latency", names,
                        {q: [targets[n].get(f"{q}_ms", 0) for n in names] for q in ("p50", "p95", "p99")},
                        "latency (ms)", "latency percentiles per server"))
    if bench == "train":
        parts = ""
        if result.get("baseline_images_per_s") and result.get("harness_images_per_s"):
            parts += _bars("bench-train-throughput", ["bare PyTorch loop", "minikf harness"],
                           {"images/s": [result["baseline_images_per_s"],
                                         result["harness_images_per_s"]]},
                           "images per second", "the same training, bare and through minikf")
        if result.get("scaling"):
            workers = list(result["scaling"])
            parts += _bars("bench-train-scaling", [f"{w} worker(s)" for w in workers],
                           {"images/s": [result["scaling"][w] for w in workers]},
                           "images per second", "throughput by number of workers")
        return parts
    steps = result.get("steps") or []
    if steps:
        return _bars("bench-journey-steps", [s["name"] for s in steps],
                     {"workload": [s.get("workload_s", 0) for s in steps],
                      "overhead": [s.get("overhead_s", 0) for s in steps]},
                     "seconds", "each step's own work and what minikf added around it", stacked=True)
    return ""


def html_section(result: dict) -> str:
    """One benchmark result as an HTML fragment (h2, a table, the raw JSON folded away)."""
    bench = result.get("benchmark", "?")
    pairs: list[tuple[str, object]] = [("date", result.get("date")),
                                       ("machine", (result.get("machine") or {}).get("cpu"))]
    if bench == "serve":
        head = ("target", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "peak_rss_mb")
        table = "".join(
            "<tr>" + f"<td>{html.escape(name)}</td>" + "".join(
                f"<td>{t.get(k, 0):.4g}</td>" for k in head[1:]) + "</tr>"
            for name, t in result.get("targets", {}).items())
        extra = (f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{table}</table>")
        pairs += [(k, result.get(k)) for k in ("ratio_rps_minikf_vs_stock",
                                               "ratio_p99_minikf_vs_stock",
                                               "ratio_rps_minikf_vs_ceiling", "pinning")]
    elif bench == "train":
        extra = ""
        pairs += [(k, result.get(k)) for k in ("device", "gpu", "baseline_images_per_s",
                                               "harness_images_per_s", "harness_overhead_pct",
                                               "scaling_efficiency_2", "machine_ceiling_2",
                                               "scaling_2_of_two_apart", "baseline_peak_rss_mb",
                                               "harness_peak_rss_mb", "note")]
        pairs += [(f"1->{n} efficiency, median of rounds", v)
                  for n, v in result.get("scaling_efficiency_median", {}).items()]
        pairs += [(f"{n} worker(s) images/s", v) for n, v in result.get("scaling", {}).items()]
        pairs += [(f"{n} worker(s) peak RSS MiB per worker", v)
                  for n, v in result.get("worker_peak_rss_mb", {}).items()]
        if result.get("resnet50"):
            pairs += [("ResNet-50 synthetic", json.dumps(result["resnet50"]))]
    else:
        steps = result.get("steps", [])
        head = ("step", "seconds", "workload_s", "overhead_s")
        extra = ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(
            f"<tr><td>{html.escape(s['name'])}</td><td>{s['seconds']:.2f}</td>"
            f"<td>{s['workload_s']:.2f}</td><td>{s['overhead_s']:.2f}</td></tr>" for s in steps)
            + "</table>")
        pairs += [(k, result.get(k)) for k in ("wall_s", "workload_s", "overhead_s", "overhead_pct",
                                               "outside_steps_s", "framework_on_path_s",
                                               "minikf_overhead_s", "minikf_overhead_pct",
                                               "framework_startup_s", "bare_overhead_pct",
                                               "workload_s_for_target_pct", "fixed_overhead_s",
                                               "overhead_per_epoch_s")]
        if result.get("scaled"):
            pairs += [(f"at {result['scaled'].get('epochs')} epochs", json.dumps(result["scaled"]))]
    raw = html.escape(json.dumps(result, indent=2))
    return (f"<section><h2>Benchmark: {html.escape(bench)}</h2>"
            f"<div class='charts'>{_charts(result)}</div><table>{_rows(pairs)}</table>"
            f"{extra}<details><summary>JSON</summary><pre>{raw}</pre></details></section>")


def write_report(result: dict, results_dir: Path) -> Path:
    """Add the section to a run's report (results_dir/report.html), or make a page of its own.

    The fragment goes to results_dir/sections/bench-<name>.html, which the engine's report
    writer includes; a results dir with a results.json has its report.html written again.
    """
    from minikf.results.html import SECTIONS_DIR, write_html
    from minikf.results.jsonfile import load_json
    from minikf.results.page import page

    results_dir.mkdir(parents=True, exist_ok=True)
    sections = results_dir / SECTIONS_DIR
    sections.mkdir(exist_ok=True)
    files.write_text(sections / f"bench-{result['benchmark']}.html", html_section(result))
    run_json = results_dir / "results.json"
    if run_json.exists():
        write_html(load_json(run_json), results_dir / "report.html")
    else:
        body = "".join(p.read_text() for p in sorted(sections.glob("*.html")))
        files.write_text(results_dir / "report.html",
                         page("minikf bench", f"<h1>minikf benchmarks</h1>{body}"))
    return results_dir / "report.html"
