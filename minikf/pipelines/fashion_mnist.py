"""The Fashion-MNIST journey as a Kubeflow Pipelines pipeline.

Each component imports minikf's own workload code, so the same functions run in a local
subprocess (kfp.local.SubprocessRunner), in a container (the runtime image in images/) and
in a cluster. The base image is the minikf runtime image; set MINIKF_RUNTIME_IMAGE to a
mirror's copy for air-gapped clusters.
"""


import os

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

RUNTIME_IMAGE = os.environ.get("MINIKF_RUNTIME_IMAGE", "minikf/runtime:latest")


@dsl.component(base_image=RUNTIME_IMAGE)
def download(mirrors: str, sample: bool, raw: Output[Dataset]) -> int:
    """Fetch the four IDX files, MD5-verified, from the first mirror that has them."""
    from pathlib import Path

    from minikf.workload import fashion_data

    checksums = fashion_data.SAMPLE_FILES if sample else fashion_data.FILES
    found = fashion_data.download(Path(raw.path), mirrors.split(","), dict(checksums))
    return len(found)


@dsl.component(base_image=RUNTIME_IMAGE)
def preprocess(raw: Input[Dataset], tensors: Output[Dataset]) -> int:
    """IDX -> normalized float tensors; returns the number of training images."""
    from pathlib import Path

    from minikf.workload import fashion_data

    return fashion_data.preprocess(Path(raw.path), Path(tensors.path))["train"]


@dsl.component(base_image=RUNTIME_IMAGE)
def train(tensors: Input[Dataset], epochs: int, batch_size: int, lr: float,
          model: Output[Model]) -> float:
    """Train the CNN in this task (WORLD_SIZE from the env contract, 1 when absent)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = Path(model.path)
    subprocess.run(
        [sys.executable, "-m", "minikf.workload.train_worker", "--data", tensors.path,
         "--out", str(out), "--epochs", str(epochs), "--batch-size", str(batch_size),
         "--lr", str(lr)],
        check=True,
    )
    last = (out / "metrics.jsonl").read_text().strip().splitlines()[-1]
    return float(json.loads(last)["loss"])


@dsl.component(base_image=RUNTIME_IMAGE)
def evaluate(tensors: Input[Dataset], model: Input[Model], metrics: Output[Metrics]) -> float:
    """Test-set accuracy of the trained model."""
    from pathlib import Path

    import numpy as np
    import torch

    from minikf.workload.model import load_model

    net = load_model(Path(model.path) / "model")
    test = np.load(Path(tensors.path) / "test.npz")
    with torch.no_grad():
        predicted = net(torch.from_numpy(test["x"])).argmax(1).numpy()
    accuracy = float((predicted == test["y"]).mean())
    metrics.log_metric("accuracy", accuracy)
    return accuracy


@dsl.pipeline(name="fashion-mnist", description="download, preprocess, train, evaluate")
def fashion_mnist_pipeline(
    mirrors: str = "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    sample: bool = False, epochs: int = 3, batch_size: int = 64, lr: float = 0.002,
) -> float:
    fetched = download(mirrors=mirrors, sample=sample)
    tensors = preprocess(raw=fetched.outputs["raw"])
    trained = train(tensors=tensors.outputs["tensors"], epochs=epochs, batch_size=batch_size,
                    lr=lr)
    return evaluate(tensors=tensors.outputs["tensors"], model=trained.outputs["model"]).outputs["Output"]
