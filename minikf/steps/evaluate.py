"""Evaluate a trained model on test.npz and publish it where `minikf serve` looks.

Where training left a current model.onnx (train_worker --export-onnx, checked there against the
eager model), the test set runs in ONNX Runtime and this process never imports torch (2-3 s of
the journey, issue 6); otherwise the model.pt runs in PyTorch and model.onnx is exported here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from minikf.steps.base import StepContext, StepFailed, StepOutcome
from minikf.workload.fast_infer import load_exported


def _predict(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int = 512) -> np.ndarray:
    """argmax of the logits that `run` (numpy in, numpy out) gives, batch by batch."""
    preds = [run(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]
    return np.concatenate(preds).astype(np.int64) if preds else np.zeros(0, dtype=np.int64)


def _torch_runner(model_dir: Path):
    """The eager model from model.pt (imports torch): its runner and the module itself."""
    import torch

    from minikf.workload.model import load_model

    model = load_model(model_dir)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return run, model


def _class_count(model_dir: Path) -> int:
    """From model.json (written with the model); the journey's 10 classes if it says nothing."""
    try:
        return len(json.loads((model_dir / "model.json").read_text())["classes"])
    except (OSError, ValueError, KeyError, TypeError):
        return 10


def _confusion(y: np.ndarray, pred: np.ndarray, classes: int = 10) -> list[list[int]]:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y, pred), 1)
    return matrix.tolist()


def run(ctx: StepContext) -> StepOutcome:
    model_dir = Path(ctx.arg("model_dir", kind=str))
    test_file = Path(ctx.arg("data_dir", kind=str)) / "test.npz"
    if not test_file.exists():
        raise StepFailed(f"step {ctx.name!r}: no {test_file}")
    run, model = load_exported(model_dir), None
    if run is None:
        try:
            run, model = _torch_runner(model_dir)
        except FileNotFoundError as exc:
            raise StepFailed(str(exc)) from exc
    with np.load(test_file) as npz:
        x, y = npz["x"].astype(np.float32), npz["y"].astype(np.int64)
    pred = _predict(run, x)
    accuracy = float((pred == y).mean()) if len(y) else 0.0
    published = ctx.results_dir / "model"
    if published.exists():
        shutil.rmtree(published)
    shutil.copytree(model_dir, published)
    if model is not None:  # model.onnx: the server then starts without importing torch
        from minikf.workload.fast_infer import export_onnx

        export_onnx(model, published)
    outputs = {"model_dir": str(published), "accuracy": accuracy,
               "confusion": _confusion(y, pred, _class_count(model_dir)),
               "predictions_sample": pred[:20].tolist(),
               "runtime": "onnxruntime" if model is None else "torch"}
    return StepOutcome(metrics={"accuracy": accuracy, "test_images": int(len(y))}, outputs=outputs)
