"""The dashboard's own pages (runs, compare, lineage, running, bundles), as HTML text.

Built with the reports' page skeleton and chart library (minikf.results.page); the lineage graph
is drawn by Cytoscape.js (assets/, served by the dashboard at /assets/).
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from urllib.parse import quote

from minikf.metadata.report import final_models, model_digest
from minikf.metadata.store import RunRecord
from minikf.results.charts import TITLES
from minikf.results.jsonfile import load_json
from minikf.results.model import RunResult
from minikf.results.page import PALETTE, axis, chart, metric, page, seconds, status_text, table
from minikf.runtime.errors import MinikfError
from minikf.ui.catalog import Catalog, RunEntry

NAV = ('<nav id="nav"><b>minikf</b> &nbsp; <a href="/">runs</a><a href="/bundles">conformance</a>'
       '<a href="/running">running now</a></nav>')


def layout(title: str, body: str, head: str = "") -> str:
    return page(f"minikf ui: {title}", NAV + body, head)


def with_nav(document: str) -> str:
    """A report or bundle page from a results dir, with the dashboard's navigation on top."""
    return document.replace("<main>", "<main>" + NAV, 1)


def _run_link(entry: RunEntry) -> str:
    rid = html.escape(entry.run_id)
    return f'<a href="/runs/{quote(entry.run_id)}/">{rid}</a>'


def _options(name: str, values: list[str], chosen: str) -> str:
    opts = "".join(f'<option{" selected" if v == chosen else ""}>{html.escape(v)}</option>'
                   for v in ["", *values])
    return f'<label>{name} <select name="{name}">{opts}</select></label> '


def runs_page(catalog: Catalog, filters: dict[str, str]) -> str:
    runs = catalog.sorted_runs()
    values = {k: sorted({getattr(r, k) for r in runs}) for k in ("scenario", "platform", "status")}
    text = filters.get("q", "").lower()
    shown = [r for r in runs
             if all(not filters.get(k) or getattr(r, k) == filters[k] for k in values)
             and (not text or text in f"{r.run_id} {r.scenario} {r.platform} {r.bundle}".lower())]
    form = ('<form method="get" action="/" id="filters">' +
            "".join(_options(k, v, filters.get(k, "")) for k, v in values.items()) +
            f'<label>text <input name="q" value="{html.escape(filters.get("q", ""))}"></label> '
            '<button>filter</button></form>')
    rows = []
    for r in shown:
        rid = html.escape(r.run_id)
        where = (f"bundle {html.escape(r.bundle)}" if r.bundle else
                 html.escape(str(r.path)) if r.path else f'<span class="muted">{html.escape(r.note)}</span>')
        has_model = r.record is not None and model_digest(r.record) != "-"
        rows.append([f'<input type="radio" name="a" value="{rid}">',
                     f'<input type="radio" name="b" value="{rid}">',
                     f'<span style="white-space:nowrap">{html.escape(r.started[:19].replace("T", " "))}'
                     "</span>", _run_link(r), html.escape(r.scenario),
                     html.escape(r.platform), status_text(r.status),
                     f'<span style="white-space:nowrap">{seconds(r.duration_s)}</span>',
                     where, f'<a href="/lineage/{quote(r.run_id)}">lineage</a>' if has_model else ""])
    problems = "".join(f'<p class="muted">{html.escape(p)}</p>' for p in catalog.problems)
    body = (f"<h1>Runs ({len(shown)} of {len(runs)})</h1>{form}"
            '<form method="get" action="/compare" id="compare">'
            + table(["A", "B", "started", "run", "scenario", "platform", "status", "time",
                     "results", ""], rows, cls="runs")
            + '<button>compare A with B</button></form>' + problems)
    return layout("runs", body)


def bundles_page(catalog: Catalog) -> str:
    rows = [[f'<a href="/bundles/{quote(b.name)}/index.html">{html.escape(b.name)}</a>',
             html.escape(b.platform), status_text(b.status), html.escape(b.started),
             html.escape(", ".join(f"{k} {v}" for k, v in sorted(b.counts.items())))]
            for b in sorted(catalog.bundles.values(), key=lambda b: b.started, reverse=True)]
    body = "<h1>Conformance bundles</h1>" + (
        table(["bundle", "platforms", "status", "started", "scenarios"], rows) if rows
        else "<p>No bundle found (`minikf conformance` writes one).</p>")
    return layout("conformance", body)


def record_page(entry: RunEntry) -> str:
    """A run the lineage store knows but whose results dir no longer holds it."""
    from minikf.metadata.report import show

    text = show(entry.record) if entry.record else ""
    body = (f"<h1>{html.escape(entry.scenario)} on {html.escape(entry.platform)} "
            f"{status_text(entry.status)}</h1><p class='muted'>run {html.escape(entry.run_id)}: "
            f"no report ({html.escape(entry.note)}); what the lineage store recorded:</p>"
            f"<pre>{html.escape(text)}</pre>")
    return layout(entry.run_id, body)


def _result(entry: RunEntry) -> RunResult | None:
    if entry.path is None:
        return None
    try:
        return load_json(entry.path / "results.json")
    except MinikfError:
        return None


def _flat_metrics(result: RunResult | None, record: RunRecord | None) -> dict[str, object]:
    if result is not None:
        return {f"{s.name}.{k}": v for s in result.steps for k, v in s.metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {f"{step}.{k}": v for step, values in (record.metrics if record else {}).items()
            for k, v in values.items()}


def _flat_params(record: RunRecord | None) -> dict[str, str]:
    if record is None:
        return {}
    return {f"{scope}.{k}": v if isinstance(v, str) else json.dumps(v)
            for scope, values in record.params.items() for k, v in values.items()}


def _shown(name: str, value, numeric: bool) -> str:
    if value is None:
        return "-"
    return html.escape(metric(name, value) if numeric else str(value))


def _side_by_side(a: dict, b: dict, numeric: bool) -> str:
    rows = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        differs = va != vb
        name = key.rsplit(".", 1)[-1]
        fa, fb = (_shown(name, v, numeric) for v in (va, vb))
        delta = ""
        if numeric and isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            delta = f"{vb - va:+.4g}"
        mark = ' class="bad"' if differs else ""
        rows.append([f"<span{mark}>{html.escape(key)}</span>", fa, fb, delta][:4 if numeric else 3])
    return table(["", "A", "B", "B - A"][:4 if numeric else 3], rows, cls="compare")


def _overlaid(a: RunResult | None, b: RunResult | None) -> str:
    """Each series both runs have (train's loss, accuracy, ...), A and B on one chart."""
    if a is None or b is None:
        return ""
    sa = {f"{s.name}.{k}": v for s in a.steps for k, v in s.series.items() if "rank" not in k}
    sb = {f"{s.name}.{k}": v for s in b.steps for k, v in s.series.items() if "rank" not in k}
    charts = []
    for key in [k for k in sa if k in sb and not k.endswith("latency_ms")]:
        n = max(len(sa[key]), len(sb[key]))
        name = key.rsplit(".", 1)[-1]
        scale = 100.0 if name == "accuracy" else 1.0
        config = {"type": "line", "data": {"labels": list(range(1, n + 1)), "datasets": [
            {"label": f"A {a.run_id}", "data": [v * scale for v in sa[key]],
             "borderColor": PALETTE[0], "backgroundColor": PALETTE[0], "pointRadius": 3},
            {"label": f"B {b.run_id}", "data": [v * scale for v in sb[key]],
             "borderColor": PALETTE[1], "backgroundColor": PALETTE[1], "pointRadius": 3,
             "borderDash": [5, 4]}]},
            "options": {"scales": {"x": axis("epoch"), "y": axis(TITLES.get(name, name))}}}
        charts.append(chart(f"compare-{key}", config, html.escape(key)))
    return f"<div class='charts'>{''.join(charts)}</div>" if charts else ""


def compare_page(a: RunEntry, b: RunEntry) -> str:
    ra, rb = _result(a), _result(b)
    head = {"scenario": (a.scenario, b.scenario), "platform": (a.platform, b.platform),
            "status": (a.status, b.status), "started": (a.started, b.started),
            "time": (seconds(a.duration_s), seconds(b.duration_s))}
    if a.record and b.record:
        head["code"] = (a.record.code_version, b.record.code_version)
        head["model"] = (model_digest(a.record), model_digest(b.record))
    top = table(["", f"A {_run_link(a)}", f"B {_run_link(b)}"],
                [[k, html.escape(str(x)), html.escape(str(y))] for k, (x, y) in head.items()])
    curves = _overlaid(ra, rb)
    body = (f"<h1>Compare {html.escape(a.run_id)} with {html.escape(b.run_id)}</h1>{top}"
            + (f"<h2>Curves</h2>{curves}" if curves else "")
            + "<h2>Metrics</h2>"
            + _side_by_side(_flat_metrics(ra, a.record), _flat_metrics(rb, b.record), True)
            + "<h2>Parameters</h2>" + (
                _side_by_side(_flat_params(a.record), _flat_params(b.record), False)
                if a.record or b.record else "<p>Neither run is in the lineage store.</p>"))
    return layout("compare", body)


def _sha_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def lineage_graph(record: RunRecord, producers: list[RunRecord], entries: dict[str, RunEntry],
                  serving: list[dict]) -> dict:
    """Cytoscape elements: data -> run -> model -> served, for the run's model."""
    models = final_models(record)
    weights = next((m for m in models if m.name.endswith("model.pt")), models[0] if models else None)
    nodes: dict[str, dict] = {}
    edges: set[tuple[str, str]] = set()

    def node(nid: str, label: str, kind: str) -> str:
        nodes.setdefault(nid, {"data": {"id": nid, "label": label, "kind": kind}})
        return nid

    model = node(f"model:{weights.sha256}", f"model {weights.sha256[:12]}\n{weights.name}", "model") \
        if weights else None
    for run in producers or [record]:
        rn = node(f"run:{run.run_id}", f"run {run.run_id}\n{run.scenario} on {run.platform}\n{run.status}",
                  "run")
        groups: dict[str, list] = {}
        for art in (a for a in run.artifacts if a.kind == "dataset"):
            groups.setdefault(f"{art.step}: {art.name.split('/')[0]}", []).append(art)
        for label, arts in groups.items():
            digest = hashlib.sha256("".join(sorted(a.sha256 for a in arts)).encode()).hexdigest()
            edges.add((node(f"data:{digest}", f"{label}\n{len(arts)} files, {digest[:12]}", "data"), rn))
        if model:
            edges.add((rn, model))
        entry = entries.get(run.run_id)
        result = _result(entry) if entry else None
        for step in (result.steps if result else []):
            if step.kind == "serve" and str(step.status) == "passed":
                served = node(f"served:{run.run_id}:{step.name}",
                              f"served in run {run.run_id}\n{step.outputs.get('url', '')}\n(stopped)",
                              "served")
                edges.add((model or rn, served))
    for live in serving:
        sha = _sha_file(Path(str(live.get("model_dir", ""))) / "model.pt")
        if weights and sha == weights.sha256:
            now = node(f"live:{live.get('url')}", f"serving now\n{live.get('url')}", "live")
            edges.add((model, now))
    elements = list(nodes.values()) + [{"data": {"id": f"{s}->{t}", "source": s, "target": t}}
                                       for s, t in sorted(edges)]
    return {"elements": elements}


def lineage_page(record: RunRecord, graph: dict) -> str:
    data = json.dumps(graph).replace("</", "<\\/")
    colours = {"data": "#2ca02c", "run": "#1f77b4", "model": "#9467bd", "served": "#8c564b",
               "live": "#ff7f0e"}
    style = [{"selector": "node", "style": {
        "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "color": "#fff",
        "font-size": 11, "shape": "round-rectangle", "width": 190, "height": 62,
        "background-color": "#777"}},
        *({"selector": f'node[kind = "{k}"]', "style": {"background-color": c}}
          for k, c in colours.items()),
        {"selector": "edge", "style": {"curve-style": "bezier", "target-arrow-shape": "triangle",
                                       "width": 2, "line-color": "#999",
                                       "target-arrow-color": "#999"}}]
    script = (f'<script src="/assets/cytoscape.min.js"></script><script>'
              f"window.minikfGraph = cytoscape({{container: document.getElementById('lineage'),"
              f" elements: {data}['elements'], style: {json.dumps(style)},"
              f" layout: {{name: 'breadthfirst', directed: true, spacingFactor: 1.1,"
              f" transform: (node, pos) => ({{x: pos.y, y: pos.x}})}},"
              f" userZoomingEnabled: false}});</script>")
    legend = " ".join(f'<span class="badge" style="background:{c}">{k}</span>'
                      for k, c in colours.items())
    body = (f"<h1>Lineage of run {html.escape(record.run_id)}'s model</h1>"
            f"<p>{legend} &nbsp; data → run → model → served</p>"
            '<div id="lineage" style="height:460px;background:#fff;border:1px solid #ddd"></div>'
            f"{script}<p><a href='/runs/{quote(record.run_id)}/'>the run's report</a></p>")
    return layout("lineage", body)


def running_page(models: list[dict], notebooks: list) -> str:
    model_rows = [[html.escape(str(m.get("model", ""))), html.escape(str(m.get("url", ""))),
                   html.escape(str(m.get("platform", ""))),
                   (f'<a href="/runs/{quote(str(m["run_id"]))}/">{html.escape(str(m["run_id"]))}</a>'
                    if m.get("run_id") else "minikf serve"),
                   html.escape(str(m.get("model_dir", ""))), str(m.get("pid", ""))] for m in models]
    nb_rows = [[html.escape(n.user), html.escape(n.url), str(n.pid)] for n in notebooks]
    body = ("<h1>Running now</h1><h2>Served models</h2>"
            + (table(["model", "url", "platform", "run", "model dir", "pid"], model_rows, "served")
               if model_rows else "<p>No model is being served.</p>")
            + "<h2>Notebooks</h2>"
            + (table(["user", "url", "pid"], nb_rows, "notebooks") if nb_rows
               else "<p>No notebook server is running.</p>"))
    return layout("running", body)


def login_page() -> str:
    """What every path answers without credentials (401): paste the token, or arrive with it
    in the URL's fragment (#token=...), which browsers never send to the server."""
    body = ("<h1>minikf ui</h1><p>This dashboard needs the token `minikf ui` printed when it "
            "started.</p><form id='login'><input id='token' type='password' size='48' "
            "autocomplete='off' placeholder='token'> <button>open</button></form>"
            "<p id='problem' class='bad'></p>"
            "<script>"
            "async function login(token) {"
            " const r = await fetch('/login', {method: 'POST', headers: {'Content-Type': "
            "'application/json'}, body: JSON.stringify({token})});"
            " if (r.ok) { location.replace(location.pathname + location.search); }"
            " else { document.getElementById('problem').textContent = 'That token is not this "
            "dashboard\\'s (HTTP ' + r.status + ').'; } }"
            "const m = location.hash.match(/token=([^&]+)/);"
            "if (m) { history.replaceState(null, '', location.pathname + location.search);"
            " login(decodeURIComponent(m[1])); }"
            "document.getElementById('login').addEventListener('submit', e => {"
            " e.preventDefault(); login(document.getElementById('token').value); });"
            "</script>")
    return page("minikf ui: sign in", body)
