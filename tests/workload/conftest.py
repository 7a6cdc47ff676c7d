"""Fixtures for the model server's tests: the real sample, a briefly trained model, its server."""

from __future__ import annotations

import pytest

from tests.paths import SAMPLE
from tests.workload.model_servers import running_server


@pytest.fixture(scope="session")
def fashion_sample(tmp_path_factory) -> dict:
    """The bundled real Fashion-MNIST sample, preprocessed as the journey does (x in [0, 1])."""
    import numpy as np

    from minikf.workload.fashion_data import preprocess

    out = tmp_path_factory.mktemp("fashion-sample")
    preprocess(SAMPLE, out)
    with np.load(out / "train.npz") as train, np.load(out / "test.npz") as test:
        return {"x_train": train["x"], "y_train": train["y"], "x_test": test["x"], "y_test": test["y"]}


@pytest.fixture(scope="session")
def trained_fashion(tmp_path_factory, fashion_sample) -> dict:
    """A FashionCNN trained briefly on the sample (2 s: plain SGD, since torch.optim loads
    torch._dynamo), published as the evaluate step publishes it (model.pt, model.json, model.onnx);
    with its in-process predictions and probabilities on the sample's test images."""
    import numpy as np
    import torch

    from minikf.workload.fast_infer import export_onnx
    from minikf.workload.model import FashionCNN, save_model

    torch.manual_seed(0)
    net = FashionCNN()
    x, y = torch.from_numpy(fashion_sample["x_train"]), torch.from_numpy(fashion_sample["y_train"])
    generator = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: more threads only contend (10x slower on a busy host)
    try:
        for _ in range(4):
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x), 25):
                batch = order[i:i + 25]
                net.zero_grad()
                torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
                with torch.no_grad():
                    for p in net.parameters():
                        p -= 0.1 * p.grad
    finally:
        torch.set_num_threads(threads)
    net.eval()
    model_dir = save_model(net, tmp_path_factory.mktemp("trained") / "model")
    assert export_onnx(net, model_dir) is not None
    with torch.no_grad():
        logits = net(torch.from_numpy(fashion_sample["x_test"]))
    predictions = logits.argmax(1).numpy()
    accuracy = float((predictions == fashion_sample["y_test"]).mean())
    assert accuracy > 0.4, f"the quick training went wrong: accuracy {accuracy}"
    return {"dir": model_dir, "net": net, "predictions": predictions,
            "probabilities": torch.softmax(logits, 1).numpy().astype(np.float32), "accuracy": accuracy}


@pytest.fixture(scope="session")
def fashion_server(tmp_path_factory, trained_fashion):
    """The trained model behind the real server (default limits), for the whole session."""
    log = tmp_path_factory.mktemp("fashion-server") / "server.log"
    with running_server(trained_fashion["dir"], log) as server:
        yield server
