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
from minikf.workload.fast_infer import Batcher, DeadlineExceeded, Overloaded, compile_model
from minikf.workload.model import FashionCNN
from minikf.workload.served_model import CallableRuntime, ServedModel, TensorSpec

# Looked up, never imported here: importing locust monkey-patches the process with gevent.
needs_locust = pytest.mark.skipif(importlib.util.find_spec("locust") is None,
                                  reason="bench serve drives its load with locust (not installed)")


@pytest.mark.slow
@needs_locust
def test_bench_serve_reports_every_figure():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = bench_serve(users=2, duration=1.0, warmup=0.3, rounds=1, burst_users=20)

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
    burst = result["burst"]
    assert burst["users"] == 20 and set(burst["targets"]) == {"minikf", "stock"}
    for name, figures in burst["targets"].items():
        for key in ("rps", "ok_rps", "rejected_503", "p99_ms", "p99_ok_ms", "errors"):
            assert key in figures, (name, key)
        assert figures["errors"] == 0, (name, figures["error_samples"])
        assert figures["requests"] > 0 and figures["rejected_503"] <= figures["requests"], name
    assert burst["targets"]["stock"]["rejected_503"] == 0  # stock queues everything
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
    run, platform = compile_model(net)
    assert platform in ("onnxruntime_onnx", "pytorch_libtorch", "pytorch")
    x = np.random.default_rng(3).random((5, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).argmax(1).tolist()
    assert run(x).argmax(axis=1).tolist() == want
    assert run(x.reshape(5, 1, 28, 28)).argmax(axis=1).tolist() == want


def _first_pixel_model(calls: list[int], delay_s: float = 0.0) -> ServedModel:
    """A stand-in classifier (class = first pixel) so the batcher's grouping can be seen."""
    import time

    def forward(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        time.sleep(delay_s)
        logits = np.zeros((len(x), 10), dtype=np.float32)
        logits[np.arange(len(x)), x[:, 0, 0].astype(int)] = 1.0
        return logits

    runtime = CallableRuntime(forward, "python", [TensorSpec("x", "FP32", (-1, 2, 2))],
                              [TensorSpec("logits", "FP32", (-1, 10))])
    return ServedModel("toy", runtime, max_batch=5)


def test_batcher_runs_what_queued_together_as_one_forward_pass():
    calls: list[int] = []
    batcher = Batcher(_first_pixel_model(calls))

    async def main():
        images = [np.full((n, 2, 2), c, dtype=np.float32) for n, c in ((1, 3), (2, 7), (3, 1))]
        return await asyncio.gather(*(batcher.run({"x": i}) for i in images))

    answers = asyncio.run(main())
    batcher.close()
    assert [a[0].argmax(1).tolist() for a in answers] == [[3], [7, 7], [1, 1, 1]]
    assert calls == [3, 3]  # 1+2 fit under max_batch=5; the 3 go in a second pass


def test_batcher_refuses_past_its_queue_and_its_deadline():
    """A full queue is refused at once; a request still queued at its deadline is never run."""
    calls: list[int] = []
    batcher = Batcher(_first_pixel_model(calls, delay_s=0.2), max_queue=2, deadline_s=0.1)
    one = np.zeros((1, 2, 2), dtype=np.float32)

    async def main():
        return await asyncio.gather(*(batcher.run({"x": one + i}) for i in range(3)),
                                    return_exceptions=True)

    first, second, third = asyncio.run(main())
    batcher.close()
    assert isinstance(third, Overloaded) and "limit 2" in str(third)
    # The first two go in together (same loop turn), so both are answered.
    assert first[0].argmax(1).tolist() == [0] and second[0].argmax(1).tolist() == [1]
    assert calls == [2]

    calls.clear()
    batcher = Batcher(_first_pixel_model(calls, delay_s=0.3), max_queue=4, deadline_s=0.1)

    async def staggered():
        first = asyncio.ensure_future(batcher.run({"x": one}))
        await asyncio.sleep(0.05)  # the first is running now; the second waits behind it
        second = asyncio.ensure_future(batcher.run({"x": one}))
        return await asyncio.gather(first, second, return_exceptions=True)

    done, late = asyncio.run(staggered())
    batcher.close()
    assert isinstance(late, DeadlineExceeded) and "deadline" in str(late)
    assert calls == [1]


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
