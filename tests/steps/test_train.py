"""The train and evaluate steps: a real 2-worker DDP run, and a worker that dies."""


import os

import numpy as np
import psutil
import pytest

from minikf.engine.runner import run_scenario
from minikf.runtime.errors import StepFailed
from minikf.runtime.processes import RunResources
from minikf.scenario import load_scenario
from minikf.steps import train
from minikf.steps.base import StepContext
from minikf.workload.model import load_model
from tests.paths import SAMPLE


def _train_workers() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "minikf.workload.train_worker" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


def test_train_and_evaluate_on_the_sample(write_scenario, local, tmp_path):
    """3 epochs of 2 workers (batch 64) reach 0.527-0.753 test accuracy over 30 seeds (mean
    0.628; a seed stands for a CPU's kernels here): 0.4 says the model learned (chance is 0.1)
    whatever CPU runs it. The train loss falls from 2.13-2.24 to 0.97-1.23 (15 seeds): no edge."""
    path = write_scenario(f"""name: journey
steps:
  - name: download
    kind: download
    args: {{mirrors: "{SAMPLE}", sample: true}}
  - name: preprocess
    kind: preprocess
    args: {{raw_dir: "${{steps.download.outputs.raw_dir}}"}}
  - name: train
    kind: train
    timeout: 120
    args: {{data_dir: "${{steps.preprocess.outputs.data_dir}}", workers: 2, epochs: 3}}
    expect: ["epochs == 3", "checkpoints == 3"]
  - name: evaluate
    kind: evaluate
    args:
      model_dir: "${{steps.train.outputs.model_dir}}"
      data_dir: "${{steps.preprocess.outputs.data_dir}}"
    expect: ["accuracy >= 0.4"]
""")
    out = tmp_path / "r"
    result = run_scenario(load_scenario(path), local, out)
    assert result.status == "passed", result.message
    steps = {s.name: s for s in result.steps}
    assert len(steps["train"].series["loss"]) == 3
    assert steps["train"].series["loss"][-1] < steps["train"].series["loss"][0]
    evaluate = steps["evaluate"]
    assert len(evaluate.outputs["confusion"]) == 10
    assert sum(map(sum, evaluate.outputs["confusion"])) == evaluate.metrics["test_images"]
    assert len(evaluate.outputs["predictions_sample"]) == 20
    assert evaluate.outputs["runtime"] == "onnxruntime"  # rank 0 exported model.onnx: no torch
    assert (out / "model" / "model.onnx").is_file()
    load_model(out / "model")
    assert (out / "logs" / "train-worker-1.log").exists()
    assert not _train_workers()
    metrics = steps["train"].metrics
    assert metrics["workers"] == 2 and metrics["workers_requested"] == 2
    assert metrics["workers_reason"].startswith("2 workers as asked")
    assert f"minikf: {metrics['workers_reason']}" in (out / "logs" / "train.log").read_text()


def _context(tmp_path, local, **args) -> StepContext:
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    np.savez(data / "train.npz", x=rng.random((64, 28, 28), dtype=np.float32),
             y=rng.integers(0, 10, 64))
    return StepContext(name="train", args={"data_dir": str(data), "epochs": 1, **args},
                       workdir=tmp_path / "wd", log_path=tmp_path / "logs" / "train.log",
                       resources=RunResources(), platform=local, params={}, timeout=120,
                       results_dir=tmp_path / "r")


def test_auto_is_the_default_and_the_results_say_what_was_chosen_and_why(local, tmp_path):
    ctx = _context(tmp_path, local, schedule="onecycle", augment=True)
    try:
        outcome = train.run(ctx)
    finally:
        ctx.resources.cleanup()
    metrics = outcome.metrics
    assert metrics["workers_requested"] == "auto" and metrics["workers"] in (1, 2)
    assert "(auto)" in metrics["workers_reason"] and "cores free" in metrics["workers_reason"]
    assert 0 <= metrics["free_cores"] <= len(os.sched_getaffinity(0))
    assert ctx.log_path.read_text().startswith(f"minikf: {metrics['workers_reason']}\n")
    assert not _train_workers()


@pytest.mark.parametrize("args, words", [({"workers": 0}, "workers must be a number >= 1 or auto, got 0"),
                                          ({"workers": "two"}, "got 'two'"),
                                          ({"schedule": "steep"}, "schedule must be one of constant, "
                                                                  "onecycle, got 'steep'"),
                                          ({"shares": "fair"}, "shares must be one of speed, even, "
                                                               "got 'fair'")])
def test_bad_training_arguments_are_one_clear_line(local, tmp_path, args, words):
    with pytest.raises(StepFailed, match=words):
        train.run(_context(tmp_path, local, **args))


def test_a_dying_worker_fails_the_step_and_stops_the_rest(local, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "train.npz", x=rng.random((256, 28, 28), dtype=np.float32),
             y=rng.integers(0, 10, 256))
    monkeypatch.setenv("MINIKF_TEST_KILL_RANK", "1")
    resources = RunResources()
    ctx = StepContext(name="train", args={"data_dir": str(data), "workers": 2, "epochs": 50},
                      workdir=tmp_path / "wd", log_path=tmp_path / "logs" / "train.log",
                      resources=resources, platform=local, params={}, timeout=60,
                      results_dir=tmp_path / "r")
    try:
        with pytest.raises(StepFailed, match="worker 1 exited with code 7"):
            train.run(ctx)
        assert len(resources.processes) == 2
        assert all(p.poll() is not None for p in resources.processes)
        assert not any(psutil.pid_exists(p.pid) and psutil.Process(p.pid).status() != "zombie"
                       for p in resources.processes)
        assert not _train_workers()
    finally:
        resources.cleanup()


def test_evaluate_without_model_onnx_runs_the_model_pt_and_exports_it(local, tmp_path):
    """A model dir with only model.pt (e.g. trained on a cluster): evaluate runs it in PyTorch,
    and publishes a model.onnx that gives the same predictions."""
    import torch

    from minikf.steps import evaluate
    from minikf.workload.fast_infer import load_exported
    from minikf.workload.model import FashionCNN, save_model

    torch.manual_seed(0)
    save_model(FashionCNN(), tmp_path / "trained")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.savez(data / "test.npz", x=rng.random((64, 28, 28), dtype=np.float32),
             y=rng.integers(0, 10, 64))
    resources = RunResources()
    ctx = StepContext(name="evaluate", args={"model_dir": str(tmp_path / "trained"),
                                             "data_dir": str(data)},
                      workdir=tmp_path / "wd", log_path=tmp_path / "logs" / "evaluate.log",
                      resources=resources, platform=local, params={}, timeout=60,
                      results_dir=tmp_path / "r")
    outcome = evaluate.run(ctx)
    assert outcome.outputs["runtime"] == "torch"
    assert outcome.metrics["test_images"] == 64
    run = load_exported(tmp_path / "r" / "model")
    assert run is not None
    with np.load(data / "test.npz") as npz:
        onnx_pred = run(npz["x"][:20]).argmax(1).tolist()
    assert onnx_pred == outcome.outputs["predictions_sample"]


def test_worker_runs_under_torchrun(tmp_path):
    """The same worker under `torchrun --standalone` (what a Kubeflow TrainJob's torch runtime
    starts): the elastic agent owns the rendezvous store, so the worker must not open its own."""
    import subprocess
    import sys

    from minikf.workload import fashion_data

    fashion_data.download(tmp_path / "raw", [str(SAMPLE)], dict(fashion_data.SAMPLE_FILES))
    fashion_data.preprocess(tmp_path / "raw", tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "minikf.workload.train_worker", "--data", str(tmp_path / "data"),
         "--out", str(tmp_path / "out"), "--epochs", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Address already in use" not in proc.stderr
    assert (tmp_path / "out" / "model" / "model.pt").exists()
