"""bench serve at CI size: real servers (minikf, stock KServe, uvicorn ceiling), real locust load.

No timing assertions: every figure is present and sane, nothing failed, nothing is left running.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os

import numpy as np
import psutil
import pytest
import torch

from minikf.bench.serve import bench_serve, cpu_plan
from minikf.workload.fast_infer import Batcher, compile_model
from minikf.workload.model import FashionCNN

# Looked up, never imported here: importing locust monkey-patches the process with gevent.
needs_locust = pytest.mark.skipif(importlib.util.find_spec("locust") is None,
                                  reason="bench serve drives its load with locust (not installed)")


@pytest.mark.slow
@needs_locust
def test_bench_serve_reports_every_figure():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = bench_serve(users=2, duration=1.0, warmup=0.3, rounds=1)

    assert set(result["targets"]) == {"minikf", "stock", "ceiling"}
    for name, figures in result["targets"].items():
        for key in ("rps", "p50_ms", "p95_ms", "p99_ms", "errors", "requests", "peak_rss_mb"):
            assert key in figures, (name, key)
        assert figures["errors"] == 0, (name, figures["error_samples"])
        assert figures["requests"] > 0 and figures["rps"] > 0, name
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"], name
        assert figures["peak_rss_mb"] > 10, name  # a Python process, read from VmHWM
    for key in ("ratio_rps_minikf_vs_stock", "ratio_p99_minikf_vs_stock", "ratio_rps_minikf_vs_ceiling"):
        assert result[key] is not None and result[key] > 0, key
    assert "pinned" in result["pinning"]
    # Every server and the load generator it started are gone (other tests' processes aside).
    left = [p for p in psutil.Process().children(recursive=True)
            if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [p.cmdline() for p in left]


def test_cpu_plan_splits_disjoint_cpus():
    plan = cpu_plan()
    assert plan.server and plan.loadgen
    if len(os.sched_getaffinity(0)) >= 2:
        assert not set(plan.server) & set(plan.loadgen)
        assert "pinned to CPU" in plan.describe(4)
    else:
        assert plan.server == plan.loadgen and "not pinned" in plan.describe(4)


def test_compiled_runtime_matches_eager_model():
    torch.manual_seed(0)
    net = FashionCNN().eval()
    run, name = compile_model(net)
    assert name in ("onnxruntime", "torchscript", "eager")
    x = np.random.default_rng(3).random((5, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).argmax(1).tolist()
    assert run(x).argmax(axis=1).tolist() == want


def test_batcher_runs_same_turn_requests_as_one_forward_pass():
    calls: list[int] = []

    def forward(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        logits = np.zeros((len(x), 10), dtype=np.float32)
        logits[np.arange(len(x)), x[:, 0, 0].astype(int)] = 1.0  # class = first pixel
        return logits

    batcher = Batcher(forward, max_images=5)

    async def main():
        images = [np.full((n, 28, 28), c, dtype=np.float32) for n, c in ((1, 3), (2, 7), (3, 1))]
        return await asyncio.gather(*(batcher.classify(i) for i in images))

    answers = asyncio.run(main())
    assert answers == [[3], [7, 7], [1, 1, 1]]
    assert calls == [3, 3]  # 1+2 fit under max_images=5; the 3 go in a second pass


def test_onnx_export_serves_without_torch_and_goes_stale_with_the_weights(tmp_path):
    import subprocess
    import sys

    from minikf.workload.fast_infer import export_onnx, load_exported
    from minikf.workload.model import save_model

    torch.manual_seed(0)
    net = FashionCNN().eval()
    model_dir = save_model(net, tmp_path / "model")
    assert export_onnx(net, model_dir) == model_dir / "model.onnx"
    x = np.random.default_rng(5).random((6, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).argmax(1).tolist()
    assert load_exported(model_dir)(x).argmax(axis=1).tolist() == want
    # The point of it: a fresh process gets the runtime without importing torch.
    probe = ("import sys; from minikf.workload.fast_infer import load_exported; "
             f"assert load_exported({str(model_dir)!r}) is not None; print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    # New weights make the export stale: back to model.pt.
    torch.manual_seed(1)
    save_model(FashionCNN().eval(), model_dir)
    assert load_exported(model_dir) is None
