"""Evaluate a trained model on test.npz and publish it where `minikf serve` looks.

Where training left a current model.onnx (train_worker --export-onnx, checked there against the
eager model), the test set runs in ONNX Runtime and this process never imports torch (2-3 s of
the journey); otherwise the model.pt runs in PyTorch and model.onnx is exported here.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from minikf.runtime import files
from minikf.runtime.errors import StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome
from minikf.workload.evaluation import class_names, confusion, predict_classes, torch_runner
from minikf.workload.fast_infer import load_exported

SHOWN = 32  # misclassified test images kept as PNGs for the report


def misclassified(x: np.ndarray, y: np.ndarray, pred: np.ndarray, folder: Path,
                  results_dir: Path, shown: int = SHOWN) -> list[dict]:
    """The first `shown` test images the model got wrong, as 28x28 PNGs in `folder`:
    [{index, label, predicted, image (relative to results_dir)}]."""
    wrong = np.flatnonzero(pred != y)[:shown]
    folder.mkdir(parents=True, exist_ok=True)
    found = []
    for index in wrong.tolist():
        pixels = np.clip(x[index].reshape(28, 28) * 255.0, 0, 255).astype(np.uint8)
        path, png = folder / f"{index:05d}.png", io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        files.write_bytes(path, png.getvalue())
        found.append({"index": index, "label": int(y[index]), "predicted": int(pred[index]),
                      "image": path.relative_to(results_dir).as_posix()})
    return found


def run(ctx: StepContext) -> StepOutcome:
    model_dir = Path(ctx.arg("model_dir", kind=str))
    test_file = Path(ctx.arg("data_dir", kind=str)) / "test.npz"
    if not test_file.exists():
        raise StepFailed(f"step {ctx.name!r}: no {test_file}")
    run, model = load_exported(model_dir), None
    if run is None:
        try:
            run, model = torch_runner(model_dir)
        except FileNotFoundError as exc:
            raise StepFailed(str(exc)) from exc
    with np.load(test_file) as npz:
        x, y = npz["x"].astype(np.float32), npz["y"].astype(np.int64)
    pred = predict_classes(run, x)
    accuracy = float((pred == y).mean()) if len(y) else 0.0
    published = files.copy_tree(model_dir, ctx.results_dir / "model")  # whole, or not at all
    if model is not None:  # model.onnx: the server then starts without importing torch
        from minikf.workload.fast_infer import export_onnx

        export_onnx(model, published)
    classes = class_names(model_dir)
    images = Path(ctx.results_dir) / ctx.name / "misclassified"
    shutil.rmtree(images, ignore_errors=True)
    outputs = {"model_dir": str(published), "accuracy": accuracy, "classes": classes,
               "confusion": confusion(y, pred, len(classes)),
               "misclassified": misclassified(x, y, pred, images, Path(ctx.results_dir)),
               "misclassified_total": int((pred != y).sum()),
               "predictions_sample": pred[:20].tolist(),
               "runtime": "onnxruntime" if model is None else "torch"}
    return StepOutcome(metrics={"accuracy": accuracy, "test_images": int(len(y))}, outputs=outputs)


OUTPUTS = ("accuracy", "test_images", "model_dir", "confusion", "predictions_sample", "runtime",
           "classes", "misclassified", "misclassified_total")

KIND = StepKind("evaluate", run, outputs=OUTPUTS)
