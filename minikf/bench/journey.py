"""The whole Fashion-MNIST journey on local, timed: where does the wall time go?

`minikf run fashion-mnist` runs as a user runs it (a fresh CLI process), timed from outside.
Then each step's time is split into the workload's own compute and the rest (platform overhead):

- download, preprocess: all workload (in-process data work, nothing else happens there);
- train: workload = the sum of rank 0's timed epochs (from its log); the rest is process start-up,
  imports, rendezvous, DDP set-up, checkpoints, teardown. Of the rest, `framework_s` is the time
  from the step's start until rank 0 had PyTorch loaded (its log's timeline line): the
  framework's own start-up left on the critical path (with warm starts, what the run's first
  steps did not hide);
- evaluate: workload = the same forward pass over the test set in the runtime the step used
  (ONNX Runtime on rank 0's model.onnx, or PyTorch), re-timed here in a warm process (the step
  also pays loading the model and copying it to the results);
- serve: no workload: starting the model server is all platform;
- predict: all workload (the requests the journey makes against the served model);
- outside the steps (CLI start-up, scenario loading, results, cleanup): no workload.

overhead_pct = (wall - workload) / wall; overhead_s beside it, and workload_s_for_target_pct: the
compute at which the same overhead would be 20% (at the default size, 700 training images, the
overhead is mostly fixed start-up, so its share falls as the compute grows; --scale-epochs
measures that with a second run).

minikf_overhead_s / _pct: the overhead less `framework_s`, i.e. what minikf itself adds (the CLI,
the engine, rendezvous, checkpoints, the model server's start, cleanup). Beside it, the same run
measures framework_startup_s: a fresh Python process importing torch and building an optimizer
(which in torch 2.13 imports torch._dynamo), what a bare `python train.py` pays before its first
step.

The baseline: `minikf.bench.bare_journey`, the same work as one bare script (one torch import,
the same data, recipe and epochs, evaluate, serve over loopback HTTP, predict), run right after
each journey with as many PyTorch threads as the journey had workers (the same cores), for
`rounds` rounds. ratio_to_bare = the journey's best wall / the script's best wall (a neighbour
only ever slows a run down, so the best of each is the least disturbed), with each round's own
ratio and the load average around it beside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "fashion-mnist.yaml"

TIMEOUT_S = 1800
ALL_WORKLOAD = {"download", "preprocess", "predict"}


def _json_lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _epoch_seconds(log: Path, train_images: int) -> float:
    """Rank 0 prints one JSON line per epoch with images_per_s = images / epoch seconds."""
    return sum(train_images / r["images_per_s"] for r in _json_lines(log) if r.get("images_per_s"))


def _framework_seconds(log: Path, step_started: str) -> float:
    """From the step's start to rank 0's `ready` (PyTorch loaded), from its timeline line."""
    lines = [r for r in _json_lines(log) if r.get("event") == "timeline"]
    if not lines or not step_started:
        return 0.0
    return max(0.0, lines[-1]["ready_unix_s"] - datetime.fromisoformat(step_started).timestamp())


def _evaluate_compute(model_dir: Path, data_dir: Path | None, test_images: int,
                      runtime: str = "torch") -> float:
    """The evaluate step's forward pass over the test set, in the runtime the step used
    (ONNX Runtime on model.onnx, or PyTorch on model.pt), warm (best of 3)."""
    import numpy as np

    from minikf.workload.evaluation import predict_classes, torch_runner
    from minikf.workload.fast_infer import load_exported

    run = load_exported(model_dir) if runtime == "onnxruntime" else None
    if run is None:
        run, _ = torch_runner(model_dir)
    if data_dir and (data_dir / "test.npz").exists():
        with np.load(data_dir / "test.npz") as npz:
            x = npz["x"].astype(np.float32)
    else:  # the work dir is gone: same shape, same compute
        x = np.zeros((test_images, 28, 28), dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        predict_classes(run, x)
        best = min(best, time.perf_counter() - started)
    return best


STARTUP_PROBE = ("import os, time, torch\n"
                 "torch.optim.Adam(torch.nn.Linear(1, 1).parameters())  # pulls in torch._dynamo\n"
                 "print(time.time(), flush=True)\n"
                 "os._exit(0)  # not the teardown: a training process's first step comes first\n")


def framework_startup_s() -> float:
    """What any PyTorch training process pays before its first step, measured beside the journey:
    a fresh interpreter importing torch and building an optimizer (torch 2.13's optimizers and
    DDP import torch._dynamo on first use), from its start to that point."""
    started = time.time()
    proc = subprocess.run([sys.executable, "-c", STARTUP_PROBE], check=True, capture_output=True,
                          text=True, timeout=600)
    return float(proc.stdout.split()[-1]) - started


def _run_journey(params: dict[str, str], results_dir: Path | None) -> dict:
    """One `minikf run fashion-mnist` in a fresh process: wall time and the per-step split."""
    with tempfile.TemporaryDirectory(prefix="minikf-bench-journey-") as tmp:
        results = Path(results_dir) if results_dir else Path(tmp) / "results"
        argv = [sys.executable, "-m", "minikf.cli", "run", "fashion-mnist", "--results", str(results),
                "--quiet"]
        for key, value in params.items():
            argv += ["--param", f"{key}={value}"]
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        wall = time.monotonic() - started
        run_json = results / "results.json"
        if not run_json.exists():
            raise RuntimeError(f"the journey failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
        run = json.loads(run_json.read_text())
        if proc.returncode != 0 or run.get("status") != "passed":
            raise RuntimeError(f"the journey failed: {run.get('message') or proc.stderr[-500:]}")
        steps = {s["name"]: s for s in run["steps"]}
        train_images = int(steps["preprocess"]["metrics"].get("train_images", 0))
        test_images = int(steps["evaluate"]["metrics"].get("test_images", 0))
        data_dir = steps["preprocess"]["outputs"].get("data_dir")
        rows = []
        for step in run["steps"]:
            name, seconds = step["name"], float(step["duration_s"])
            framework = 0.0
            if name in ALL_WORKLOAD:
                work = seconds
            elif name == "train":
                log = results / "logs" / "train-worker-0.log"
                work = _epoch_seconds(log, train_images)
                framework = _framework_seconds(log, step.get("started", ""))
            elif name == "evaluate":
                work = _evaluate_compute(results / "model", Path(data_dir) if data_dir else None,
                                         test_images, step["outputs"].get("runtime", "torch"))
            else:
                work = 0.0
            work = min(work, seconds)
            rows.append({"name": name, "seconds": seconds, "workload_s": work,
                         "overhead_s": seconds - work, "framework_s": min(framework, seconds - work),
                         "status": step["status"]})
    workload = sum(r["workload_s"] for r in rows)
    framework = sum(r["framework_s"] for r in rows)
    train = steps["train"]["metrics"]
    return {"wall_s": wall, "workers": train.get("workers"),
            "workers_reason": train.get("workers_reason"),
            "accuracy": steps["evaluate"]["metrics"].get("accuracy"),
            "run_duration_s": float(run["duration_s"]),
            "outside_steps_s": wall - sum(r["seconds"] for r in rows), "workload_s": workload,
            "overhead_s": wall - workload, "overhead_pct": (wall - workload) / wall * 100 if wall else 0.0,
            "framework_on_path_s": framework, "minikf_overhead_s": wall - workload - framework,
            "minikf_overhead_pct": (wall - workload - framework) / wall * 100 if wall else 0.0,
            "train_images": train_images, "epochs": int(steps["train"]["metrics"].get("epochs", 0)),
            "steps": rows}


def scenario_params(params: dict[str, str]) -> dict:
    """The journey's parameters as the run sees them: the scenario's defaults, then `params`
    (YAML values, as `--param` reads them)."""
    import yaml

    from minikf.scenario import load_scenario

    merged = {**load_scenario(SCENARIO).params}
    merged.update({k: yaml.safe_load(v) for k, v in params.items()})
    if isinstance(merged.get("mirrors"), str):
        merged["mirrors"] = merged["mirrors"].replace("${scenario_dir}", str(SCENARIO.parent))
    return merged


def run_bare(params: dict, threads: int) -> dict:
    """One `minikf.bench.bare_journey` in a fresh process with `threads` PyTorch threads: its
    wall time from outside, and its own figures."""
    if not params.get("sample", True):
        raise RuntimeError("the bare-script baseline runs on the bundled sample only (sample=true)")
    with tempfile.TemporaryDirectory(prefix="minikf-bench-bare-") as tmp:
        argv = [sys.executable, "-m", "minikf.bench.bare_journey", "--mirrors", str(params["mirrors"]),
                "--work", tmp, "--epochs", str(params["epochs"]),
                "--batch-size", str(params["batch_size"]), "--lr", str(params["lr"]),
                "--schedule", str(params.get("schedule", "constant"))]
        if params.get("augment") in (True, "true", "True"):
            argv.append("--augment")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                              env=env)
        wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the bare script failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **figures}


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def bench_journey(params: dict[str, str] | None = None, results_dir: Path | None = None,
                  scale_epochs: int | None = None, rounds: int = 2) -> dict:
    """The journey at its own size, each time followed by the bare script doing the same work,
    `rounds` times; with scale_epochs, once more at that many epochs, so the overhead splits
    into a fixed part and a part that grows with the epochs."""
    params = dict(params or {})
    bare_params = scenario_params(params)
    journeys, bares, loads = [], [], []
    for i in range(max(rounds, 1)):
        before = _load()
        journeys.append(_run_journey(params, results_dir if i == 0 else None))
        bares.append(run_bare(bare_params, threads=int(journeys[-1]["workers"] or 1)))
        loads.append([round(before, 2), round(_load(), 2)])
    first = min(journeys, key=lambda j: j["wall_s"])
    bare = min(bares, key=lambda b: b["wall_s"])
    rows, wall, workload, overhead = (first[k] for k in ("steps", "wall_s", "workload_s", "overhead_s"))
    worst = sorted(rows, key=lambda r: r["overhead_s"], reverse=True)
    startup = framework_startup_s()
    target = 20.0
    figures = {
        "scenario": "fashion-mnist",
        "platform": "local",
        "params": params,
        **{k: v for k, v in first.items() if k != "steps"},
        "rounds": len(journeys),
        "journey_wall_s_rounds": [j["wall_s"] for j in journeys],
        "journey_workers_rounds": [j["workers"] for j in journeys],
        "bare_wall_s_rounds": [b["wall_s"] for b in bares],
        "bare_threads_rounds": [b["threads"] for b in bares],
        "load_avg_rounds": loads,
        "bare": bare,
        "bare_wall_s": bare["wall_s"],
        "ratio_to_bare": wall / bare["wall_s"],
        "ratio_to_bare_rounds": [j["wall_s"] / b["wall_s"] for j, b in zip(journeys, bares, strict=True)],
        "target_ratio_to_bare": 1.1,
        "target_overhead_pct": target,
        # At a fixed overhead, the workload a journey needs for the overhead to be the target share.
        "workload_s_for_target_pct": overhead * (100 - target) / target,
        "framework_startup_s": startup,
        # What the workload's framework alone would be: its start-up, on top of its compute.
        "bare_overhead_pct": startup / (startup + workload) * 100 if workload else 0.0,
        "steps": rows,
        "largest_overheads": [f"{r['name']}: {r['overhead_s']:.1f}s" for r in worst[:3]],
    }
    if scale_epochs:
        big = _run_journey({**params, "epochs": str(scale_epochs)}, None)
        figures["scaled"] = {k: v for k, v in big.items() if k != "steps"}
        added = big["epochs"] - first["epochs"]
        if added > 0:
            per_epoch = (big["overhead_s"] - overhead) / added
            figures["overhead_per_epoch_s"] = per_epoch
            figures["fixed_overhead_s"] = overhead - per_epoch * first["epochs"]
    return figures
