"""Serve a saved FashionCNN with KServe's ModelServer (V1 and V2 / Open Inference Protocol).

    python -m minikf.workload.server --model-dir DIR --port N [--host H] [--token T]

The token is better given in the environment (MINIKF_SERVE_TOKEN) so it does not show in `ps`.
It is never logged.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kserve
import numpy as np
import orjson
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

from minikf.workload.fast_infer import (
    FastInfer,
    InputError,
    compile_model,
    images_v1,
    images_v2,
    load_exported,
)

MODEL_NAME = "fashion-mnist"
MAX_BATCH = 256
DEFAULT_MAX_BODY = 8 * 1024 * 1024
TOKEN_ENV = "MINIKF_SERVE_TOKEN"

log = logging.getLogger("minikf.serve")


@contextmanager
def _invalid_input():
    """The request checks are fast_infer's (one copy for both paths); KServe answers 400 on
    InvalidInput."""
    try:
        yield
    except InputError as exc:
        raise InvalidInput(str(exc)) from None


class FashionModel(kserve.Model):
    """The FashionCNN behind KServe's data plane."""

    def __init__(self, name: str, model_dir: str | Path) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.forward = None  # numpy (N, 28, 28) float32 -> logits, from the fastest runtime
        self.runtime = ""
        self.ready = False

    def load(self) -> bool:
        # A current model.onnx (written by the evaluate step) needs no torch at all: seconds
        # less per start. Otherwise model.pt through torch, exported in memory.
        self.forward = load_exported(self.model_dir)
        if self.forward is not None:
            self.runtime = "onnxruntime (model.onnx)"
        else:
            import torch

            from minikf.workload.model import load_model

            torch.set_num_threads(1)  # a tiny model: one thread per server process
            self.forward, self.runtime = compile_model(load_model(self.model_dir))
        self.ready = True
        return self.ready

    def _classify(self, batch: np.ndarray) -> list[int]:
        logits = self.forward(np.ascontiguousarray(batch, dtype=np.float32))
        return [int(c) for c in logits.argmax(axis=1).tolist()]

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, InferRequest):
            return self._predict_v2(payload)
        if isinstance(payload, dict):
            return self._predict_v1(payload)
        raise InvalidInput(f"unsupported request body of type {type(payload).__name__}")

    def _predict_v1(self, payload: dict) -> dict:
        with _invalid_input():
            batch = images_v1(payload, MAX_BATCH)
        return {"predictions": self._classify(batch)}

    def _predict_v2(self, request: InferRequest) -> InferResponse:
        if len(request.inputs) != 1:
            raise InvalidInput(f"expected exactly one input tensor, got {len(request.inputs)}")
        tensor = request.inputs[0]
        fields = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        with _invalid_input():
            if tensor.datatype == "FP32":  # as_numpy() of another datatype is no FP32 batch
                try:
                    fields["data"] = tensor.as_numpy()
                except (ValueError, TypeError) as exc:
                    raise InputError(f"input {tensor.name!r} data is not numeric FP32 ({exc})") from None
            batch = images_v2(fields, MAX_BATCH)
        classes = self._classify(batch)
        output = InferOutput(name="predictions", shape=[len(classes)], datatype="INT64", data=classes)
        return InferResponse(
            response_id=request.id or "", model_name=self.name, infer_outputs=[output]
        )


class AuthAndLimits:
    """ASGI middleware: bearer token on every path, a body size cap (413), bad JSON -> 400.

    The JSON is parsed once here (orjson) and handed on in scope["minikf.json"] for FastInfer.
    """

    def __init__(self, app, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body_bytes

    @staticmethod
    async def _reply(send, status: int, message: str, extra: list | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token is not None:
            auth = headers.get(b"authorization", b"").decode("latin-1")
            if not auth:
                return await self._reply(send, 401, "missing bearer token",
                                         [(b"www-authenticate", b"Bearer")])
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return await self._reply(send, 403, "invalid token")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await self._reply(send, 400, "bad content-length header")
            if too_big:
                return await self._reply(send, 413, f"request body over {self.max_body} bytes")
        # Read the whole body (also chunked uploads) under the cap, then replay it.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await self._reply(send, 413, f"request body over {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if body and scope.get("method") == "POST" and ("json" in content_type or not content_type):
            try:
                scope = {**scope, "minikf.json": orjson.loads(body)}
            except (ValueError, UnicodeDecodeError) as exc:
                return await self._reply(send, 400, f"malformed JSON body: {exc}")
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def serve(
    model_dir: str | Path,
    port: int,
    host: str = "127.0.0.1",
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
) -> None:
    """Run the server in the foreground until interrupted."""
    from kserve import model_server

    class HostRESTServer(model_server.RESTServer):
        # kserve's RESTServer hard-codes uvicorn's host to "0.0.0.0" (all interfaces) and
        # offers no option for it; a local model server must not be reachable from the network
        # by default, so we set the host on the uvicorn Config before the server starts.
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.config.host = host

        def create_application(self):
            # Outermost: auth and limits, then the predict hot path, then KServe's own app.
            super().create_application()
            access = logging.getLogger("uvicorn.access")  # a line per request costs more than the model
            access.handlers, access.propagate = [], False
            self.config.app = AuthAndLimits(FastInfer(model_server.app, MODEL_NAME, model.forward,
                                                      MAX_BATCH),
                                            token=token or None, max_body_bytes=max_body_bytes)

    model_server.RESTServer = HostRESTServer
    model = FashionModel(MODEL_NAME, model_dir)
    model.load()
    log.info("serving %s from %s on http://%s:%d (auth %s, runtime %s)", MODEL_NAME, model_dir,
             host, port, "on" if token else "off", model.runtime)
    kserve.ModelServer(http_port=port, enable_grpc=False, workers=1).start([model])
    # Stopped (SIGTERM/SIGINT) and drained: skip the interpreter's teardown of torch, onnxruntime
    # and kserve, which took 2-3 s here and made every run's cleanup wait for it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def warm_up() -> None:
    """What serving imports on first use, done ahead when this server is started warm
    (minikf/platforms/warm.py)."""
    import onnxruntime  # noqa: F401
    from kserve import model_server  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minikf.workload.server")
    # Not `--model`: kserve parses sys.argv on import and would take it for `--model_name`.
    parser.add_argument("--model-dir", dest="model", required=True,
                        help="model directory (model.pt + model.json)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default=None, help=f"bearer token (prefer env {TOKEN_ENV})")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY)
    parser.add_argument("--no-auth", action="store_true",
                        help="serve without a token (secure default: a token is required)")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV) or args.token
    if not token and not args.no_auth:
        parser.error(f"no token: set {TOKEN_ENV} (or --token); --no-auth serves an open endpoint")
    serve(args.model, args.port, host=args.host, token=token, max_body_bytes=args.max_body_bytes)


if __name__ == "__main__":
    main()
