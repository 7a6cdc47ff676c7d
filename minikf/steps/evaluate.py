"""Evaluate a trained model on test.npz and publish it where `minikf serve` looks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from minikf.steps.base import StepContext, StepFailed, StepOutcome
from minikf.workload.fast_infer import export_onnx
from minikf.workload.model import CLASSES, load_model


def _predict(model, x: np.ndarray, batch: int = 512) -> np.ndarray:
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            preds.append(model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def _confusion(y: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    matrix = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    np.add.at(matrix, (y, pred), 1)
    return matrix.tolist()


def run(ctx: StepContext) -> StepOutcome:
    model_dir = Path(ctx.arg("model_dir", kind=str))
    test_file = Path(ctx.arg("data_dir", kind=str)) / "test.npz"
    if not test_file.exists():
        raise StepFailed(f"step {ctx.name!r}: no {test_file}")
    try:
        model = load_model(model_dir)
    except FileNotFoundError as exc:
        raise StepFailed(str(exc)) from exc
    with np.load(test_file) as npz:
        x, y = npz["x"].astype(np.float32), npz["y"].astype(np.int64)
    pred = _predict(model, x)
    accuracy = float((pred == y).mean()) if len(y) else 0.0
    published = ctx.results_dir / "model"
    if published.exists():
        shutil.rmtree(published)
    shutil.copytree(model_dir, published)
    export_onnx(model, published)  # model.onnx: the server then starts without importing torch
    outputs = {"model_dir": str(published), "accuracy": accuracy,
               "confusion": _confusion(y, pred), "predictions_sample": pred[:20].tolist()}
    return StepOutcome(metrics={"accuracy": accuracy, "test_images": int(len(y))}, outputs=outputs)
