"""bench_train on the bundled sample: every field present and positive (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import torch

from minikf.bench.train import bench_train
from minikf.workload import fashion_data

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist-sample"


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
    assert isinstance(result["harness_overhead_pct"], float)
    if not torch.cuda.is_available():
        assert result["device"] == "cpu"
        assert result["gpu"] is None
        assert result["note"] == "no GPU present: CPU only"
