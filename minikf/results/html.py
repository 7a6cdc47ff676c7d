"""report.html: one self-contained page a person reads after a run (no network, charts inline).

Top to bottom: the verdict and headline figures, the step timeline (where the time went), the
steps with their rounded metrics and log links, training curves, the confusion heat map and
misclassified test images, serving latency, benchmark sections, what the run kept, versions.
Every link is relative to the results dir, so a moved folder or an unpacked bundle still works.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from minikf.results import charts
from minikf.results.model import RunResult, StepResult
from minikf.results.page import badge, key_values, metric, page, seconds, status_text, table
from minikf.runtime import files

# HTML fragments other tools drop beside a report (e.g. `minikf bench`), included in report.html.
SECTIONS_DIR = "sections"
# Step kinds whose work the platform hosts (processes, containers, pods); the others run in
# minikf's own process on this host.
PLATFORM_KINDS = {"train", "tune", "serve", "pipeline", "notebook", "notebook_server", "command"}
HEADLINE = (("evaluate", "accuracy", "test accuracy"), ("train", "images_per_s", "training"),
            ("predict", "p95_ms", "serving p95"))


def extra_sections(results_dir: Path) -> str:
    folder = results_dir / SECTIONS_DIR
    return "".join(p.read_text() for p in sorted(folder.glob("*.html"))) if folder.is_dir() else ""


def where(step: StepResult, result: RunResult) -> str:
    """What ran the step, in a few words."""
    if step.kind not in PLATFORM_KINDS:
        return "minikf, this host"
    info = result.platform_info
    workers = step.metrics.get("workers")
    scale = f"{workers} workers, " if isinstance(workers, int) and workers > 1 else ""
    if result.platform == "docker":
        return f"{scale}docker {info.get('runtime_image') or 'containers'}"
    if result.platform == "kubernetes":
        return f"{scale}kubernetes {info.get('namespace') or ''}".strip()
    return f"{scale}{result.platform}"


def _href(path: str | None, results_dir: Path) -> str | None:
    """A link to `path` relative to the results dir. The path was written where the run was:
    when the folder has moved since (or was unpacked from a bundle), the longest tail of it
    that exists under the results dir is the same file."""
    if not path:
        return None
    parts = Path(path).parts
    for start in range(len(parts)):
        tail = Path(*parts[start:])
        if tail.is_absolute():
            try:
                tail = tail.resolve().relative_to(results_dir.resolve())
            except ValueError:
                continue
        if (results_dir / tail).exists() and ".." not in tail.parts:
            return tail.as_posix()
    return None


def _logs(step: StepResult, results_dir: Path) -> str:
    links = []
    main = _href(step.log, results_dir)
    if main and (results_dir / main).exists():
        links.append(f'<a href="{html.escape(main)}">{html.escape(Path(main).name)}</a>')
    folder = results_dir / "logs"
    for extra in sorted(folder.glob(f"{step.name}-*.log")) if folder.is_dir() else []:
        rel = extra.relative_to(results_dir).as_posix()
        links.append(f'<a href="{html.escape(rel)}">{html.escape(extra.name)}</a>')
    return " ".join(links) or '<span class="muted">none</span>'


def _metrics(step: StepResult) -> str:
    return "<br>".join(f"{html.escape(k)}: {html.escape(metric(k, v))}"
                       for k, v in step.metrics.items())


def _steps_table(result: RunResult, results_dir: Path) -> str:
    rows = [[html.escape(s.name), html.escape(s.kind), html.escape(where(s, result)),
             status_text(s.status),
             f'<span style="white-space:nowrap">{seconds(s.duration_s)}</span>' if s.started else "",
             _metrics(s), html.escape(s.message), _logs(s, results_dir)] for s in result.steps]
    return table(["step", "kind", "ran on", "status", "time", "metrics", "message", "logs"], rows,
                 cls="steps")


def _headline(result: RunResult) -> str:
    by_kind = {s.kind: s for s in result.steps}
    tiles = [f"<b>{badge(result.status)}</b>", f"<b>{seconds(result.duration_s)}</b> in all"]
    for kind, name, label in HEADLINE:
        step = by_kind.get(kind)
        if step and name in step.metrics:
            tiles.append(f"{label} <b>{html.escape(metric(name, step.metrics[name]))}</b>")
    return f'<p class="headline">{" · ".join(tiles)}</p>'


def _image(results_dir: Path, relative: str) -> str | None:
    path = results_dir / relative
    if not path.is_file() or not path.resolve().is_relative_to(results_dir.resolve()):
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def misclassified(step: StepResult, classes: list[str], results_dir: Path) -> str:
    """The test images the model got wrong, with the true and the predicted class."""
    wrong = step.outputs.get("misclassified") or []
    if not wrong:
        return ""

    def name(i: int) -> str:
        return classes[i] if 0 <= i < len(classes) else str(i)

    cells = []
    for item in wrong:
        src = _image(results_dir, str(item.get("image", "")))
        img = (f'<img alt="test image {item.get("index")}" src="{src}">' if src
               else '<span class="muted">(image not kept)</span>')
        cells.append(f'<figure class="wrong">{img}<div>true <b>{html.escape(name(item["label"]))}'
                     f'</b></div><div class="bad">predicted {html.escape(name(item["predicted"]))}'
                     f"</div></figure>")
    total = step.outputs.get("misclassified_total", len(wrong))
    return (f"<h3>Misclassified test images ({len(wrong)} of {total})</h3>"
            f'<div class="grid" id="{html.escape(step.name)}-misclassified">{"".join(cells)}</div>')


def _outputs(result: RunResult, results_dir: Path) -> str:
    rows = []
    for step in result.steps:
        for key, value in step.outputs.items():
            if not isinstance(value, str) or not key.endswith(("_dir", "_path", "_file")):
                continue
            link = _href(value, results_dir)
            cell = (f'<a href="{html.escape(link)}">{html.escape(link)}</a>' if link
                    else html.escape(value))
            rows.append([html.escape(step.name), html.escape(key), cell])
        for key, was in step.gone.items():
            rows.append([html.escape(step.name), html.escape(key),
                         f'<span class="muted">not kept: {html.escape(was)}</span>'])
    return table(["step", "output", "where"], rows) if rows else ""


def _versions(result: RunResult) -> str:
    def rows(pairs):
        return [[html.escape(k), html.escape(v)] for k, v in key_values(pairs)]
    return ("<h3>Software</h3>" + table(["what", "version"], rows(result.versions)) +
            f"<h3>Platform: {html.escape(result.platform)}</h3>" +
            table(["what", "value"], rows(result.platform_info)))


def _classes(result: RunResult) -> list[str]:
    for step in result.steps:
        if isinstance(step.outputs.get("classes"), list):
            return [str(c) for c in step.outputs["classes"]]
    return []


def render(result: RunResult, results_dir: Path) -> str:
    """The report as HTML text (results_dir: where its logs, images and sections are)."""
    classes = _classes(result)
    test_accuracy = next((s.metrics["accuracy"] for s in result.steps
                          if s.kind == "evaluate" and "accuracy" in s.metrics), None)
    placed = {s.name: where(s, result) for s in result.steps}
    training, evaluation, serving, other = [], [], [], []
    for step in result.steps:
        if step.kind == "train" and step.series:
            training.append(f"<h3>{html.escape(step.name)}</h3><div class='charts'>"
                            + "".join(charts.training(step, test_accuracy)) + "</div>")
        heat = charts.confusion(step, classes)
        wrong = misclassified(step, classes, results_dir)
        if heat or wrong:
            evaluation.append(f"<div class='charts'>{heat}</div>{wrong}")
        lat = charts.latency(step)
        if lat:
            serving.append(f"<div class='charts'>{lat}</div>")
        if step.kind != "train":
            other += [charts.series(step, k, v) for k, v in step.series.items()
                      if not k.endswith("latency_ms") and v]

    def section(title: str, parts: list[str]) -> str:
        return f"<h2>{title}</h2>{''.join(parts)}" if parts else ""

    timeline = charts.timeline(result, placed)
    body = (
        f"<h1>{html.escape(result.scenario)} on {html.escape(result.platform)} "
        f"{badge(result.status)}</h1>"
        f'<p class="muted">run {html.escape(result.run_id)}, started {html.escape(result.started)}'
        f", results schema {html.escape(result.schema_version)}</p>"
        + (f"<p>{html.escape(result.message)}</p>" if result.message else "")
        + _headline(result)
        + section("Timeline", [f"<div class='charts'>{timeline}</div>"] if timeline else [])
        + "<h2>Steps</h2>" + _steps_table(result, results_dir)
        + section("Training", training)
        + section("Evaluation", evaluation)
        + section("Serving", serving)
        + section("Other series", [f"<div class='charts'>{''.join(other)}</div>"] if other else [])
        + extra_sections(results_dir)
        + section("Outputs", [o] if (o := _outputs(result, results_dir)) else [])
        + "<h2>Versions</h2>" + _versions(result)
    )
    return page(f"minikf: {result.scenario} on {result.platform} ({result.status})", body)


def write_html(result: RunResult, path: Path) -> None:
    files.write_text(path, render(result, path.parent))
