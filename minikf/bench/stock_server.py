"""Baseline (b): a stock KServe ModelServer serving the FashionCNN the plainest way.

    python -m minikf.bench.stock_server --model-dir DIR --port N

What the KServe docs show for a custom predictor: a kserve.Model whose predict turns the V1
"instances" into a tensor and returns {"predictions": [...]}, started with
kserve.ModelServer().start([model]). The only change: uvicorn's host is set to 127.0.0.1
(KServe hard-codes 0.0.0.0), as in the minikf server, since nothing here may listen beyond
loopback. No auth (a handicap for the minikf server, which checks a bearer token).
"""

from __future__ import annotations

import argparse

import kserve
import torch

from minikf.workload.model import load_model

MODEL_NAME = "fashion-mnist"


class StockFashionModel(kserve.Model):
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.net = None
        self.ready = False

    def load(self) -> bool:
        self.net = load_model(self.model_dir)
        self.ready = True
        return self.ready

    def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        inputs = torch.tensor(payload["instances"], dtype=torch.float32)
        with torch.no_grad():
            output = self.net(inputs)
        return {"predictions": output.argmax(dim=1).tolist()}


def main(argv: list[str] | None = None) -> None:
    from kserve import model_server

    parser = argparse.ArgumentParser(prog="python -m minikf.bench.stock_server")
    parser.add_argument("--model-dir", dest="model", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    class LoopbackRESTServer(model_server.RESTServer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.config.host = "127.0.0.1"

    model_server.RESTServer = LoopbackRESTServer
    model = StockFashionModel(MODEL_NAME, args.model)
    model.load()
    kserve.ModelServer(http_port=args.port, enable_grpc=False).start([model])


if __name__ == "__main__":
    main()
