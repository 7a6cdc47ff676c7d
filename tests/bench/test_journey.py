"""bench journey: the real Fashion-MNIST journey in a fresh CLI process, twice (15 and 16
epochs), and the same work as one bare script beside it (about 70 s here)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from minikf.cli import app


@pytest.mark.slow
def test_bench_journey_splits_wall_time_and_adds_a_report_section(tmp_path):
    results, out = tmp_path / "run", tmp_path / "journey.json"
    outcome = CliRunner().invoke(app, ["bench", "journey", "--results", str(results),
                                       "--report", str(results), "--json", str(out),
                                       "--scale-epochs", "16", "--rounds", "1"])
    assert outcome.exit_code == 0, outcome.output

    figures = json.loads(out.read_text())
    for key in ("wall_s", "workload_s", "overhead_s", "overhead_pct", "outside_steps_s", "steps",
                "largest_overheads", "machine", "date"):
        assert key in figures, key
    names = [s["name"] for s in figures["steps"]]
    assert names == ["download", "preprocess", "train", "evaluate", "serve", "predict"]
    for step in figures["steps"]:
        assert 0 <= step["workload_s"] <= step["seconds"] + 1e-9, step
        assert step["overhead_s"] == pytest.approx(step["seconds"] - step["workload_s"])
    train = next(s for s in figures["steps"] if s["name"] == "train")
    assert train["workload_s"] > 0  # rank 0's epochs were read from its log
    assert figures["wall_s"] >= sum(s["seconds"] for s in figures["steps"])
    assert figures["overhead_s"] == pytest.approx(figures["wall_s"] - figures["workload_s"])
    assert 0 < figures["overhead_pct"] < 100
    assert figures["framework_startup_s"] > 0 and 0 < figures["bare_overhead_pct"] < 100
    # PyTorch's loading on the train step's path, read from rank 0's timeline line
    assert 0 < train["framework_s"] <= train["overhead_s"]
    assert figures["framework_on_path_s"] == pytest.approx(train["framework_s"])
    assert figures["minikf_overhead_s"] == pytest.approx(
        figures["overhead_s"] - figures["framework_on_path_s"])
    # the fixed overhead read as the workload it would be 20% of
    assert figures["workload_s_for_target_pct"] == pytest.approx(4 * figures["overhead_s"])
    assert figures["train_images"] > 0 and figures["epochs"] == 15
    scaled = figures["scaled"]  # the second run, at 16 epochs
    assert scaled["epochs"] == 16 and scaled["workload_s"] > 0
    assert scaled["overhead_s"] == pytest.approx(scaled["wall_s"] - scaled["workload_s"])
    assert figures["fixed_overhead_s"] + 15 * figures["overhead_per_epoch_s"] == pytest.approx(
        figures["overhead_s"])
    assert "per epoch" in outcome.output
    page = (results / "report.html").read_text()
    assert "fashion-mnist" in page and "Benchmark: journey" in page
    assert "platform overhead" in outcome.output and "minikf's own overhead" in outcome.output
    # the bare script beside it: the same work in one process, as many threads as workers
    bare = figures["bare"]
    assert bare["wall_s"] == figures["bare_wall_s"] == figures["bare_wall_s_rounds"][0]
    assert bare["threads"] == figures["workers"] and bare["agreement"] == 1.0
    for key in ("import_s", "data_s", "train_s", "evaluate_s", "serve_s", "predict_s"):
        assert 0 <= bare[key] < bare["wall_s"], key
    assert figures["ratio_to_bare"] == pytest.approx(figures["wall_s"] / bare["wall_s"])
    assert figures["ratio_to_bare_rounds"] == [figures["ratio_to_bare"]]
    assert "journey / bare script:" in outcome.output
    # the same recipe and seed, one process or a job of any size: about the same model
    assert abs(bare["accuracy"] - figures["accuracy"]) <= 0.05
    assert figures["workers"] in (1, 2) and "(auto)" in figures["workers_reason"]
    # the workers and the model server were forked from interpreters warmed when the run started
    from minikf.platforms.warm import WARM_NOTE
    logs = [f"train-worker-{rank}.log" for rank in range(figures["workers"])]
    for log in (*logs, "serve.log"):
        assert WARM_NOTE in (results / "logs" / log).read_text(), log


def test_bench_journey_rejects_zero_rounds():
    outcome = CliRunner().invoke(app, ["bench", "journey", "--rounds", "0"])
    assert outcome.exception is not None and "--rounds" in str(outcome.exception)


def test_bench_journey_rejects_a_negative_scale():
    outcome = CliRunner().invoke(app, ["bench", "journey", "--scale-epochs", "-1"])
    assert outcome.exception is not None and "--scale-epochs" in str(outcome.exception)


def test_bench_journey_rejects_a_bad_param():
    outcome = CliRunner().invoke(app, ["bench", "journey", "--param", "epochs"])
    assert outcome.exception is not None and "key=value" in str(outcome.exception)
