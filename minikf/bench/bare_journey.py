"""The journey's work as one bare script: the fair baseline of `minikf bench journey`.

python -m minikf.bench.bare_journey --mirrors DIR --work DIR --epochs N --batch-size B --lr LR
    [--schedule onecycle] [--augment] [--count 100]

What someone without minikf would write to do the same work in one process: import torch once;
fetch and unpack the same files (checksums verified); train the same model with the same recipe
(minikf/workload/recipe.py: the same images per step as the journey's job of any worker count)
in a plain loop, with PyTorch's default threads; score the test set; serve the model over HTTP
on loopback (a stdlib server in a thread, KServe's V1 and V2 request shapes); and predict
`count` test images through it, V1 and V2 each, as the journey's predict step does. No
distribution, no checkpoints, no ONNX, no isolation, no results. Prints one JSON line with
each part's seconds and the accuracy.
"""

from __future__ import annotations

import time

STARTED = time.time()  # noqa: E402 - before torch: its import is part of the work

import argparse  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from minikf.workload import fashion_data  # noqa: E402
from minikf.workload.model import FashionCNN  # noqa: E402
from minikf.workload.recipe import (  # noqa: E402
    Augment,
    as_batch,
    channels_last,
    epoch_order,
    make_optimizer,
    make_schedule,
    steps_per_epoch,
)

IMPORTED = time.time()


def train(data: Path, epochs: int, batch_size: int, lr: float, schedule: str,
          augment: bool, seed: int = 0) -> nn.Module:
    """The journey's recipe in one process (world size 1), in a plain loop."""
    torch.manual_seed(seed)
    with np.load(data / "train.npz") as npz:
        x_all, y_all = torch.from_numpy(npz["x"]), torch.from_numpy(npz["y"])
    model = channels_last(FashionCNN())
    optimizer = make_optimizer(model.parameters(), lr)
    sched = make_schedule(schedule, optimizer, lr, epochs * steps_per_epoch(len(y_all), batch_size))
    aug = Augment(len(y_all), seed, enabled=augment)
    model.train()
    for epoch in range(1, epochs + 1):
        order = epoch_order(len(y_all), epoch, seed)
        aug.set_epoch(epoch)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(as_batch(aug(x_all[idx], idx))), y_all[idx]).backward()
            optimizer.step()
            sched.step()
    return model.eval()


def serve(model: nn.Module) -> ThreadingHTTPServer:
    """The model behind KServe's V1 and V2 request shapes, on loopback, in a thread."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            v2 = "inputs" in body
            x = (np.asarray(body["inputs"][0]["data"], dtype=np.float32).reshape(-1, 28, 28) if v2
                 else np.asarray(body["instances"], dtype=np.float32))
            with lock, torch.no_grad():
                preds = model(torch.from_numpy(x)).argmax(1).tolist()
            answer = ({"outputs": [{"name": "predictions", "datatype": "INT64",
                                    "shape": [len(preds)], "data": preds}]} if v2
                      else {"predictions": preds})
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def predict(url: str, x: np.ndarray) -> list[int]:
    """Each image over V1 and V2 in turn, as the journey's predict step sends them."""
    preds = []
    with requests.Session() as session:
        for image in x:
            r1 = session.post(f"{url}/v1/models/m:predict", json={"instances": [image.tolist()]},
                              timeout=30)
            body = {"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "FP32",
                                "data": image.ravel().tolist()}]}
            r2 = session.post(f"{url}/v2/models/m/infer", json=body, timeout=30)
            one, two = r1.json()["predictions"][0], r2.json()["outputs"][0]["data"][0]
            if one != two:
                raise RuntimeError("V1 and V2 disagree")
            preds.append(one)
    return preds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mirrors", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--schedule", default="constant")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args(argv)
    marks = {"import_s": IMPORTED - STARTED}
    t = time.time()
    raw, data = args.work / "raw", args.work / "data"
    fashion_data.download(raw, args.mirrors.split(","), dict(fashion_data.SAMPLE_FILES))
    fashion_data.preprocess(raw, data)
    marks["data_s"], t = time.time() - t, time.time()
    model = train(data, args.epochs, args.batch_size, args.lr, args.schedule, args.augment)
    marks["train_s"], t = time.time() - t, time.time()
    with np.load(data / "test.npz") as npz:
        x_test, y_test = npz["x"].astype(np.float32), npz["y"]
    with torch.no_grad():
        test_preds = model(torch.from_numpy(x_test)).argmax(1).numpy()
    accuracy = float((test_preds == y_test).mean())
    marks["evaluate_s"], t = time.time() - t, time.time()
    server = serve(model)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    marks["serve_s"], t = time.time() - t, time.time()
    preds = predict(url, x_test[:args.count])
    server.shutdown()
    marks["predict_s"] = time.time() - t
    agreement = float(np.mean(np.asarray(preds) == test_preds[:len(preds)]))
    print(json.dumps({**marks, "accuracy": accuracy, "agreement": agreement,
                      "threads": torch.get_num_threads(), "started_unix_s": STARTED}), flush=True)


if __name__ == "__main__":
    main()
