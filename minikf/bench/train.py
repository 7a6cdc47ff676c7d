"""Training throughput: a bare PyTorch loop against the journey's own DDP worker.

All figures come from one run on the same train.npz:

- baseline: `minikf.bench.bare_loop` in a subprocess (FashionCNN, Adam, one thread, no DDP),
  timing only the training loop;
- harness: `minikf.workload.train_worker` with WORLD_SIZE=1 (gloo/nccl process group, DDP,
  DistributedSampler), images_per_s read from its metrics.jsonl (mean over epochs);
- scaling: N train_worker processes together for each N in `workers`.

What train_worker reports: rank 0 writes images_per_s = seen / epoch_seconds, where `seen` is the
all-reduced image count over every rank, so the figure is already the GLOBAL (summed over ranks)
throughput of the epoch as timed by rank 0. It is used as is, not multiplied by N.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from minikf.engine.resources import Resources, free_port
from minikf.workload.contract import worker_env

TIMEOUT_S = 600


def _baseline(data_dir: Path, epochs: int, batch_size: int, lr: float) -> float:
    cmd = [sys.executable, "-m", "minikf.bench.bare_loop", "--data", str(data_dir),
           "--epochs", str(epochs), "--batch-size", str(batch_size), "--lr", str(lr)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bare loop failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return float(json.loads(lines[-1])["images_per_s"])


def _harness(data_dir: Path, world: int, epochs: int, batch_size: int, lr: float) -> float:
    """Run `world` train_worker processes together; rank 0's mean global images/s over epochs.

    Workers are started and always stopped through the engine's Resources (process groups),
    with the same env contract as the train step.
    """
    with tempfile.TemporaryDirectory(prefix="minikf-bench-") as tmp:
        out = Path(tmp)
        port = free_port()
        cmd = [sys.executable, "-m", "minikf.workload.train_worker", "--data", str(data_dir),
               "--out", str(out), "--epochs", str(epochs), "--batch-size", str(batch_size),
               "--lr", str(lr)]
        base_env = {k: v for k, v in os.environ.items() if k != "MINIKF_TEST_KILL_RANK"}
        resources = Resources()
        try:
            procs = [resources.spawn(cmd, out / f"rank-{rank}.log",
                                     env={**base_env, **worker_env(rank, world, port)})
                     for rank in range(world)]
            codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
        finally:
            resources.cleanup()
        if any(codes):
            tail = (out / "rank-0.log").read_text()[-2000:]
            raise RuntimeError(f"train_worker x{world} failed (rcs {codes}):\n{tail}")
        rates = [json.loads(line)["images_per_s"]
                 for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return sum(rates) / len(rates)


def bench_train(data_dir: Path, workers: list[int], epochs: int = 1, batch_size: int = 64,
                lr: float = 0.002) -> dict:
    """Measure baseline, harness (1 worker) and N-worker throughput; see the module docstring."""
    data_dir = Path(data_dir)
    cuda = torch.cuda.is_available()
    baseline = _baseline(data_dir, epochs, batch_size, lr)
    harness = _harness(data_dir, 1, epochs, batch_size, lr)
    # The 1-worker figure is the harness run itself; it is always part of the scaling.
    scaling = {str(n): harness if n == 1 else _harness(data_dir, n, epochs, batch_size, lr)
               for n in sorted(set(workers) | {1})}
    result: dict = {
        "device": "cuda" if cuda else "cpu",
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "baseline_images_per_s": baseline,
        "harness_images_per_s": harness,
        "harness_overhead_pct": (1 - harness / baseline) * 100,
        "scaling": scaling,
        "scaling_metric": "global images/s as rank 0 reports it (all-reduced count / rank-0 epoch time)",
    }
    if "2" in scaling:
        result["scaling_efficiency_2"] = scaling["2"] / (2 * scaling["1"])
    if not cuda:
        result["note"] = "no GPU present: CPU only"
    return result


if __name__ == "__main__":
    print(json.dumps(bench_train(Path(sys.argv[1]), [int(n) for n in sys.argv[2:]] or [1, 2]), indent=2))
