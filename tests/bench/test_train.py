"""bench_train on the bundled sample: every field present and positive (no timing assertions)."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from minikf.bench.train import bench_train
from minikf.cli import app
from minikf.workload import fashion_data
from tests.paths import SAMPLE


def test_bench_train_reports_every_figure(tmp_path):
    raw, data = tmp_path / "raw", tmp_path / "data"
    fashion_data.download(raw, [str(SAMPLE)], fashion_data.SAMPLE_FILES)
    fashion_data.preprocess(raw, data)

    result = bench_train(data, workers=[1, 2], epochs=1)

    for key in ("device", "gpu", "baseline_images_per_s", "harness_images_per_s",
                "harness_overhead_pct", "scaling", "scaling_efficiency_2"):
        assert key in result, key
    assert result["baseline_images_per_s"] > 0
    assert result["harness_images_per_s"] > 0
    assert set(result["scaling"]) == {"1", "2"}
    assert all(v > 0 for v in result["scaling"].values())
    assert result["scaling_efficiency_2"] > 0
    # the figures are the best rounds and the ratios follow from them
    assert result["baseline_images_per_s"] == max(result["baseline_images_per_s_rounds"])
    assert result["harness_images_per_s"] == max(result["harness_images_per_s_rounds"])
    assert result["harness_overhead_pct"] == pytest.approx(
        (1 - result["harness_images_per_s"] / result["baseline_images_per_s"]) * 100)
    assert result["scaling"]["1"] == result["harness_images_per_s"]
    assert result["scaling_efficiency_2"] == pytest.approx(
        result["scaling"]["2"] / (2 * result["scaling"]["1"]))
    assert result["scaling_efficiency"] == {"2": result["scaling_efficiency_2"]}
    assert result["scaling_max_workers"] == 2
    assert result["scaling_efficiency_n"] == result["scaling_efficiency_2"]
    # CPU per image from the workers' own CPU seconds; its ratio is the CPU efficiency
    assert all(v > 0 for v in result["cpu_ms_per_image"].values())
    assert result["cpu_efficiency"]["2"] == pytest.approx(
        result["cpu_ms_per_image"]["1"] / result["cpu_ms_per_image"]["2"])
    # the journey's recipe unless told otherwise, and what auto would choose here now
    assert (result["batch_size"], result["schedule"]) == (64, "onecycle")
    assert result["auto"]["workers"] >= 1 and "(auto)" in result["auto"]["reason"]
    assert len(result["load_avg_rounds"]) == 1 and set(result["scaling_rounds"]) == {"1", "2"}
    # each round's own ratio (one round here: the same as the best of each)
    assert result["scaling_efficiency_rounds"]["2"] == [pytest.approx(result["scaling_efficiency_2"])]
    assert result["scaling_efficiency_median"]["2"] == pytest.approx(result["scaling_efficiency_2"])
    # every image of every epoch trained by one rank or the other
    assert sum(result["images_by_rank"]["2"]) == sum(result["images_by_rank"]["1"]) == 700
    # beside the job: two bare loops that never talk, a core each (where there are 2 cores)
    if len(os.sched_getaffinity(0)) >= 2:
        assert result["two_apart_images_per_s"] == max(result["two_apart_images_per_s_rounds"]) > 0
        assert result["machine_ceiling_2"] == pytest.approx(
            result["two_apart_images_per_s"] / (2 * result["baseline_images_per_s"]))
        assert result["scaling_2_of_two_apart"] == pytest.approx(
            result["scaling"]["2"] / result["two_apart_images_per_s"])
        assert result["scaling_2_of_two_apart_median"] == pytest.approx(
            result["scaling_2_of_two_apart"])
    else:
        assert "machine_ceiling_2" not in result
    # Peak RSS of each process, per worker (ru_maxrss of that very pid).
    assert result["baseline_peak_rss_mb"] > 50  # a process that imported torch
    assert result["harness_peak_rss_mb"] > 50
    assert [len(v) for v in result["worker_peak_rss_mb"].values()] == [1, 2]
    assert all(v > 50 for v in result["worker_peak_rss_mb"]["2"])
    assert result["resnet50"] is None or result["resnet50"]["images_per_s"] > 0
    if not torch.cuda.is_available():
        assert result["device"] == "cpu"
        assert result["gpu"] is None
        assert result["note"] == "no GPU present: CPU only"


def test_cli_cuda_without_gpu_says_so_in_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the message is for machines without one")
    out = tmp_path / "train.json"
    result = CliRunner().invoke(app, ["bench", "train", "--workers", "1", "--device", "cuda",
                                      "--rounds", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "GPU" in line]
    assert lines == ["no GPU present: --device cuda runs the CPU part only (no ResNet-50 figure)"]
    figures = json.loads(out.read_text())
    assert figures["benchmark"] == "train" and figures["device"] == "cpu"
    assert figures["resnet50"] is None and "--device cuda" in figures["note"]


def test_resnet50_code_path_on_cpu_at_toy_size():
    """The GPU figure's code, run on CPU at 32x32, batch 2, one step: shapes and bookkeeping."""
    from minikf.bench.resnet import synthetic_images_per_s

    figure = synthetic_images_per_s("cpu", batch=2, steps=1, warmup=1, image=32)
    assert figure["parameters"] == 25_557_032  # ResNet-50's well-known count
    assert figure["precision"] == "fp32" and figure["images_per_s"] > 0 and figure["gpu"] is None
