"""Scoring a classifier on the test set, in whichever runtime holds the model: shared by the
evaluate step and the journey benchmark, which re-times the same forward pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np


def predict_classes(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                    batch: int = 512) -> np.ndarray:
    """argmax of the logits that `run` (numpy in, numpy out) gives, batch by batch."""
    preds = [run(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]
    return np.concatenate(preds).astype(np.int64) if preds else np.zeros(0, dtype=np.int64)


def torch_runner(model_dir: Path):
    """The eager model from model.pt (imports torch): its runner and the module itself."""
    import torch

    from minikf.workload.model import load_model

    model = load_model(model_dir)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return run, model


def class_names(model_dir: Path) -> list[str]:
    """From model.json (written with the model); 0..9 for the journey's 10 classes if it says
    nothing."""
    try:
        names = json.loads((model_dir / "model.json").read_text())["classes"]
    except (OSError, ValueError, KeyError, TypeError):
        return [str(i) for i in range(10)]
    return [str(n) for n in names] if isinstance(names, list) and names else [str(i) for i in range(10)]


def class_count(model_dir: Path) -> int:
    return len(class_names(model_dir))


def confusion(y: np.ndarray, pred: np.ndarray, classes: int = 10) -> list[list[int]]:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y, pred), 1)
    return matrix.tolist()
