"""Plain-text views of the lineage store for `minikf runs ...` (pure functions, easy to test)."""

from __future__ import annotations

import json
from typing import Any

from minikf.metadata.store import Artifact, RunRecord


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def model_digest(run: RunRecord) -> str:
    """A short id of the run's model: the sha256 of its weights file(s), '-' when none."""
    models = final_models(run)
    weights = [a for a in models if a.name.endswith((".pt", ".pth", ".bin", ".safetensors"))]
    named = [a for a in weights if a.name.endswith("model.pt")]  # not a checkpoint
    chosen = named or weights[-1:] or models
    return chosen[0].sha256[:12] if chosen else "-"


def final_models(run: RunRecord) -> list[Artifact]:
    """The model files of the last step that produced a model (evaluate's copy, else train's)."""
    models = [a for a in run.artifacts if a.kind == "model"]
    if not models:
        return []
    last = models[-1].step
    return [a for a in models if a.step == last]


def runs_table(runs: list[RunRecord]) -> str:
    lines = [f"{'RUN':13} {'STARTED':26} {'SCENARIO':22} {'PLATFORM':10} {'STATUS':8} MODEL"]
    for r in runs:
        lines.append(f"{r.run_id:13} {r.started:26} {r.scenario:22} {r.platform:10} "
                     f"{r.status:8} {model_digest(r)}")
    return "\n".join(lines)


def show(run: RunRecord) -> str:
    """Which data and parameters (and code, image) made this run's model, and its metrics."""
    out = [f"run {run.run_id}: {run.scenario} on {run.platform}, {run.status}, "
           f"started {run.started}, {run.duration_s:.1f}s",
           f"  code:    {run.code_version}"
           + (f", scenario {run.scenario_path} (sha256:{run.scenario_sha256[:12]})"
              if run.scenario_path else ""),
           f"  image:   {run.image}",
           f"  results: {run.results_dir}"]
    if run.message:
        out.append(f"  message: {run.message}")
    models = final_models(run)
    out.append("model:" if models else "model: none recorded (no step produced a model)")
    out += [f"  {a.step}: {a.name}  sha256:{a.sha256}  {a.size} B  {a.uri}" for a in models]
    data = [a for a in run.artifacts if a.kind == "dataset"]
    out.append("made from data:" if data else "made from data: none recorded")
    out += [f"  {a.step}: {a.name}  sha256:{a.sha256}  {a.size} B" for a in data]
    out.append("with parameters:")
    for scope, values in run.params.items():
        out.append(f"  {scope}: " + ", ".join(f"{k}={_value(v)}" for k, v in values.items()))
    out.append("metrics:" if run.metrics else "metrics: none")
    for step, values in run.metrics.items():
        out.append(f"  {step}: " + ", ".join(f"{k}={v:.6g}" for k, v in values.items()))
    out += _snapshot_lines(run)
    others = [a for a in run.artifacts if a.kind == "artifact"]
    if others:
        out.append(f"other artifacts: {len(others)} files "
                   f"({', '.join(sorted({a.step for a in others}))}; `--json` lists them)")
    return "\n".join(out)


def _snapshot_lines(run: RunRecord) -> list[str]:
    """The snapshots in this run's lineage: taken of it, or the one it re-ran."""
    words = {"of": "taken of this run", "rerun": "this run re-ran it"}
    return [f"snapshot {s['snapshot_id']}: {words.get(s['relation'], s['relation'])}, "
            f"{s['created']} (store {s['store']})" for s in run.snapshots]


def _flat_params(run: RunRecord) -> dict[str, Any]:
    return {f"{scope}.{k}": v for scope, values in run.params.items() for k, v in values.items()}


def _flat_metrics(run: RunRecord) -> dict[str, float]:
    return {f"{step}.{k}": v for step, values in run.metrics.items() for k, v in values.items()}


def _data(run: RunRecord) -> dict[str, str]:
    return {a.name: a.sha256 for a in run.artifacts if a.kind == "dataset"}


def compare(a: RunRecord, b: RunRecord) -> str:
    """Side by side: what differs in parameters, data, code, image, model and metrics."""
    w = 28
    out = [f"{'':{w}} {a.run_id:>24} {b.run_id:>24}",
           f"{'scenario':{w}} {a.scenario:>24} {b.scenario:>24}",
           f"{'status':{w}} {a.status:>24} {b.status:>24}"]
    same_code = "same" if a.code_version == b.code_version else "DIFFERENT"
    out.append(f"code: {same_code}  ({a.code_version} | {b.code_version})")
    out.append(f"image: {'same' if a.image == b.image else 'DIFFERENT'}  ({a.image} | {b.image})")
    da, db = _data(a), _data(b)
    changed = sorted(n for n in set(da) | set(db) if da.get(n) != db.get(n))
    if not da and not db:
        out.append("data: none recorded in either run")
    elif not changed:
        out.append(f"data: same ({len(da)} files, identical sha256)")
    else:
        out.append(f"data: DIFFERENT in {len(changed)} of {len(set(da) | set(db))} files: "
                   + ", ".join(changed[:6]))
    ma, mb = model_digest(a), model_digest(b)
    out.append(f"model: {'same' if ma == mb else 'different'} ({ma} | {mb})")
    pa, pb = _flat_params(a), _flat_params(b)
    diffs = [k for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    out.append("parameters that differ:" if diffs else "parameters: all the same")
    for k in diffs:
        out.append(f"  {k:{w - 2}} {_value(pa.get(k, '-')):>24} {_value(pb.get(k, '-')):>24}")
    xa, xb = _flat_metrics(a), _flat_metrics(b)
    out.append("metrics:")
    for k in sorted(set(xa) | set(xb)):
        va, vb = xa.get(k), xb.get(k)
        delta = f"{vb - va:+.4g}" if va is not None and vb is not None else ""
        out.append(f"  {k:{w - 2}} {_fmt(va):>24} {_fmt(vb):>24}  {delta}")
    return "\n".join(out)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
