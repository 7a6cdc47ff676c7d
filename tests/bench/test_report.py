"""--json/--save/--compare/--report plumbing shared by every `minikf bench` command."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from minikf.bench import report
from minikf.cli import app
from minikf.commands.bench import _finish
from minikf.results import RunResult, StepResult, write_all
from minikf.runtime.errors import MinikfError


def _serve(rps: float, p99: float, ratio: float) -> dict:
    return report.finish("serve", {
        "targets": {"minikf": {"rps": rps, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": p99, "errors": 0,
                               "peak_rss_mb": 400.0},
                    "stock": {"rps": 100.0, "p50_ms": 2.0, "p95_ms": 3.0, "p99_ms": 9.0, "errors": 0,
                              "peak_rss_mb": 350.0}},
        "ratio_rps_minikf_vs_stock": ratio, "ratio_rps_minikf_vs_ceiling": 0.5, "pinning": "x"})


def test_finish_adds_what_a_later_reader_needs():
    result = _serve(300.0, 5.0, 3.0)
    assert result["benchmark"] == "serve"
    assert {"host", "cpu", "cpus"} <= set(result["machine"])
    assert result["date"].endswith("+00:00")
    assert "torch" in result["versions"] or "python" in result["versions"]


def test_compare_flags_only_moves_the_wrong_way_beyond_threshold():
    old = _serve(300.0, 5.0, 3.0)
    same = report.compare(_serve(290.0, 5.2, 2.9), old, 0.10)
    assert same and not any(c.regression for c in same)
    worse = {c.figure: c for c in report.compare(_serve(200.0, 9.0, 2.0), old, 0.10)}
    assert worse["targets.minikf.rps"].regression  # throughput down 33%
    assert worse["targets.minikf.p99_ms"].regression  # latency up 80%
    assert worse["ratio_rps_minikf_vs_stock"].regression
    better = report.compare(_serve(600.0, 1.0, 6.0), old, 0.10)
    assert not any(c.regression for c in better)


def test_compare_pct_figures_in_points():
    old = report.finish("journey", {"wall_s": 30.0, "overhead_pct": 40.0, "overhead_s": 12.0})
    new = report.finish("journey", {"wall_s": 30.0, "overhead_pct": 55.0, "overhead_s": 12.0})
    changes = {c.figure: c for c in report.compare(new, old, 0.10)}
    assert changes["overhead_pct"].points and changes["overhead_pct"].change == 15.0
    assert changes["overhead_pct"].regression
    assert "+15.0 pts" in changes["overhead_pct"].line()


def test_compare_refuses_another_benchmark():
    with pytest.raises(MinikfError, match="cannot compare"):
        report.compare(_serve(1, 1, 1), report.finish("train", {}), 0.1)


def test_finish_exits_1_on_regression_and_writes_json_first(tmp_path, capsys):
    old = tmp_path / "old.json"
    old.write_text(json.dumps(_serve(300.0, 5.0, 3.0)))
    figures = {k: v for k, v in _serve(100.0, 20.0, 1.0).items()
               if k not in ("benchmark", "date", "machine", "versions")}
    out = tmp_path / "new.json"
    with pytest.raises(MinikfError) as err:
        _finish("serve", figures, out, False, None, old, 0.10)
    assert err.value.exit_code == 1 and "targets.minikf.rps" in err.value.message
    assert json.loads(out.read_text())["benchmark"] == "serve"
    assert "REGRESSION" in capsys.readouterr().out


def test_bad_compare_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(MinikfError, match="not JSON"):
        report.load_result(bad)
    bad.write_text("{}")
    with pytest.raises(MinikfError, match="not a minikf bench result"):
        report.load_result(bad)
    # Checked before the (long) benchmark runs.
    result = CliRunner().invoke(app, ["bench", "journey", "--compare", str(tmp_path / "missing.json")])
    assert isinstance(result.exception, MinikfError), result.output
    assert result.exception.exit_code == 2 and "cannot read" in result.exception.message


def test_save_goes_under_machine_and_date(tmp_path):
    result = _serve(300.0, 5.0, 3.0)
    path = report.save(result, root=tmp_path)
    assert path.parent.parent == tmp_path and path.name.startswith("serve-")
    assert json.loads(path.read_text()) == result


def test_report_section_standalone_and_inside_a_run_report(tmp_path):
    result = _serve(300.0, 5.0, 3.0)
    page = report.write_report(result, tmp_path / "alone")
    assert "Benchmark: serve" in page.read_text() and "ratio_rps_minikf_vs_stock" in page.read_text()

    run_dir = tmp_path / "run"
    write_all(RunResult(run_id="r1", scenario="fashion-mnist", platform="local", status="passed",
                        steps=[StepResult("train", "train", "passed", 1.0)]), run_dir)
    report.write_report(result, run_dir)
    html = (run_dir / "report.html").read_text()
    assert "fashion-mnist" in html and "Benchmark: serve" in html  # the run's report, plus ours
    assert html.index("Benchmark: serve") < html.index("<h2>Versions</h2>")
