"""The model server's hot path: V1 predict and V2 infer for our one model, without the detour.

KServe's route for a prediction goes FastAPI routing -> dataplane decode -> pydantic (V2) ->
Model.__call__ with timing metrics and latency logging -> encode -> ORJSONResponse. For a
28x28 image that detour costs several times the model itself. This ASGI layer sits in front of
KServe's app (behind the auth/limits layer, which has already parsed the JSON once with orjson)
and answers the two predict routes directly:

- decoding: the parsed JSON straight into one float32 numpy array (no pydantic, no InferRequest);
- runtime: the FashionCNN exported to ONNX in memory and run by ONNX Runtime on one thread
  (frozen TorchScript, then eager, where that is not possible), checked against the eager model
  at load (see compile_model);
- batching: requests that arrive together (parsed in the same event-loop turn) run as one
  forward pass, so a loaded server does one batch of N instead of N batches of 1, at no added
  wait for a lone request;
- encoding: orjson, the same response bodies as KServe's (checked by tests/workload/test_server.py).

Anything it does not fully recognize (other paths, other models, binary tensor extension,
requested outputs, non-JSON content) goes on to KServe unchanged, so the protocols stay whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

log = logging.getLogger("minikf.serve")

JSON_HEADERS = [(b"content-type", b"application/json")]


class InputError(ValueError):
    """A request the model cannot take; answered 400 with {"error": message}."""


ONNX_FILE = "model.onnx"
ONNX_META = "model.onnx.json"


def _onnx_bytes(net) -> bytes:
    import io
    import warnings

    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        torch.onnx.export(net, (torch.zeros(1, 28, 28),), buffer, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                          dynamo=False)
    return buffer.getvalue()


def _ort_session(model: bytes | str) -> Callable[[np.ndarray], np.ndarray]:
    """ONNX Runtime on one thread (the server is one process pinned to its share of CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x})[0]


def _onnx_runtime(net) -> Callable[[np.ndarray], np.ndarray]:
    """The model exported to ONNX in memory and run by ONNX Runtime."""
    return _ort_session(_onnx_bytes(net))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_onnx(net, model_dir: Path) -> Path | None:
    """Write model.onnx beside model.pt, checked against the eager model, so a server can start
    without importing torch (seconds of every start). None, with a logged reason, if not possible.

    model.onnx.json records the sha256 of the model.pt it came from: a changed model.pt makes
    the export stale and the server goes back to model.pt.
    """
    import torch

    model_dir = Path(model_dir)
    try:
        data = _onnx_bytes(net.eval())
        run = _ort_session(data)
        probe = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0)).numpy()
        with torch.inference_mode():
            want = net(torch.from_numpy(probe)).numpy()
        if not np.allclose(run(probe), want, rtol=1e-3, atol=1e-4):
            raise ValueError("ONNX Runtime's logits differ from the eager model's")
        (model_dir / ONNX_FILE).write_bytes(data)
        meta = {"source": "model.pt", "sha256": _sha256(model_dir / "model.pt")}
        (model_dir / ONNX_META).write_text(json.dumps(meta))
        return model_dir / ONNX_FILE
    except Exception as exc:  # the model is still served from model.pt
        log.warning("no ONNX export for %s: %s", model_dir, exc)
        return None


def load_exported(model_dir: Path) -> Callable[[np.ndarray], np.ndarray] | None:
    """An ONNX Runtime session from a current model.onnx (see export_onnx), without torch."""
    model_dir = Path(model_dir)
    onnx, meta, weights = model_dir / ONNX_FILE, model_dir / ONNX_META, model_dir / "model.pt"
    try:
        if not (onnx.is_file() and meta.is_file() and weights.is_file()):
            return None
        if json.loads(meta.read_text()).get("sha256") != _sha256(weights):
            log.warning("%s is older than model.pt: serving model.pt", onnx)
            return None
        return _ort_session(str(onnx))
    except Exception as exc:  # a broken export: model.pt is still there
        log.warning("cannot use %s (%s): serving model.pt", onnx, exc)
        return None


def _torchscript(net) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    with torch.inference_mode():
        traced = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(net, torch.zeros(4, 28, 28))))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return traced(torch.from_numpy(x)).numpy()
    return run


def compile_model(net) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The fastest runtime that gives the eager model's logits: (logits(x), its name).

    ONNX Runtime (several times faster than eager torch for this small CNN at batch 1-32 on
    one CPU thread), else frozen TorchScript, else eager; each candidate is checked against
    the eager model on batches of 1 and 4 and dropped, with a logged reason, if it differs.
    """
    import torch

    net = net.eval()
    probe = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0)).numpy()
    with torch.inference_mode():
        want = net(torch.from_numpy(probe)).numpy()
    for name, build in (("onnxruntime", _onnx_runtime), ("torchscript", _torchscript)):
        try:
            run = build(net)
            for got, expect in ((run(probe), want), (run(probe[:1]), want[:1])):
                if not np.allclose(got, expect, rtol=1e-3, atol=1e-4):
                    raise ValueError("its logits differ from the eager model's")
            return run, name
        except Exception as exc:  # missing package or export problem: try the next one
            log.warning("runtime %s unavailable (%s)", name, exc)

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()
    return eager, "eager"


class Batcher:
    """Runs every image batch submitted in one event-loop turn as a single forward pass."""

    def __init__(self, forward: Callable, max_images: int) -> None:
        self.forward = forward
        self.max_images = max_images
        self.pending: list[tuple[np.ndarray, asyncio.Future]] = []
        self.batches = 0
        self.images = 0

    async def classify(self, images: np.ndarray) -> list[int]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.pending:
            loop.call_soon(self._flush)
        self.pending.append((images, future))
        return await future

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        while pending:
            group, size = [], 0
            while pending and (not group or size + len(pending[0][0]) <= self.max_images):
                images, future = pending.pop(0)
                group.append((images, future))
                size += len(images)
            try:
                x = group[0][0] if len(group) == 1 else np.concatenate([g[0] for g in group])
                classes = self.forward(x).argmax(axis=1).tolist()
            except Exception as exc:  # a model failure fails only this group's requests
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.images += size
            start = 0
            for images, future in group:
                if not future.done():
                    future.set_result(classes[start:start + len(images)])
                start += len(images)


def images_v1(payload, max_batch: int) -> np.ndarray:
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise InputError('V1 request needs "instances": a list of 28x28 images')
    instances = payload["instances"]
    if not instances:
        raise InputError("empty batch: send at least one image")
    if len(instances) > max_batch:
        raise InputError(f"batch of {len(instances)} images is over the limit of {max_batch}")
    try:
        array = np.asarray(instances, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InputError(f"instances must be numeric nested lists of shape [N,28,28] ({exc})") from None
    return check_images(array, max_batch)


def images_v2(tensor: dict, max_batch: int) -> np.ndarray:
    shape = tensor.get("shape")
    if tensor.get("datatype") != "FP32":
        raise InputError(f"input {tensor.get('name')!r} must have datatype FP32, "
                         f"got {tensor.get('datatype')}")
    if not (isinstance(shape, list) and all(isinstance(d, int) for d in shape)) or not (
            (len(shape) == 3 and shape[1:] == [28, 28]) or (len(shape) == 2 and shape[1] == 784)):
        raise InputError(f"expected input shape [N,28,28] or [N,784], got {shape}")
    try:
        array = np.asarray(tensor.get("data"), dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InputError(f"input {tensor.get('name')!r} data is not numeric FP32 ({exc})") from None
    if array.size != int(np.prod(shape)):
        raise InputError(f"input data has {array.size} values, shape {shape} needs {int(np.prod(shape))}")
    return check_images(array.reshape(shape), max_batch)


def check_images(array: np.ndarray, max_batch: int) -> np.ndarray:
    """(N, 28, 28) or (N, 784) float32 -> contiguous (N, 28, 28); InputError otherwise."""
    if array.ndim == 2 and array.shape[1] == 784:
        array = array.reshape(-1, 28, 28)
    if array.ndim != 3 or array.shape[1:] != (28, 28):
        raise InputError(f"expected input shape [N,28,28] or [N,784], got {list(array.shape)}")
    if array.shape[0] == 0:
        raise InputError("empty batch: send at least one image")
    if array.shape[0] > max_batch:
        raise InputError(f"batch of {array.shape[0]} images is over the limit of {max_batch}")
    if not np.isfinite(array).all():
        raise InputError("input contains NaN or infinite values")
    return np.ascontiguousarray(array)


def _plain_v2(payload) -> dict | None:
    """The one input tensor of a plain JSON V2 request; None for anything to leave to KServe."""
    if not isinstance(payload, dict) or payload.get("outputs") or payload.get("parameters"):
        return None
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        return None
    if inputs[0].get("parameters"):
        return None
    return inputs[0]


class FastInfer:
    """ASGI: answers POST V1 predict / V2 infer for `model_name`; the rest goes to `app`.

    Expects the auth/limits layer in front to have put the parsed body in scope["minikf.json"].
    """

    def __init__(self, app, model_name: str, forward: Callable, max_batch: int) -> None:
        self.app = app
        self.model_name = model_name
        self.max_batch = max_batch
        self.batcher = Batcher(forward, max_images=max_batch)
        self.v1_path = f"/v1/models/{model_name}:predict"
        self.v2_path = f"/v2/models/{model_name}/infer"

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or scope.get("path") not in (self.v1_path, self.v2_path)
                or "minikf.json" not in scope):
            return await self.app(scope, receive, send)
        payload = scope["minikf.json"]
        try:
            if scope["path"] == self.v1_path:
                images = images_v1(payload, self.max_batch)
                body = {"predictions": await self.batcher.classify(images)}
            else:
                tensor = _plain_v2(payload)
                if tensor is None:
                    return await self.app(scope, receive, send)
                classes = await self.batcher.classify(images_v2(tensor, self.max_batch))
                body = {"model_name": self.model_name, "model_version": None,
                        "id": payload.get("id") or "", "parameters": None,
                        "outputs": [{"name": "predictions", "shape": [len(classes)],
                                     "datatype": "INT64", "parameters": None, "data": classes}]}
            status = 200
        except InputError as exc:
            status, body = 400, {"error": str(exc)}
        except Exception as exc:  # the model failed: 500 with the reason, server lives on
            log.exception("inference failed")
            status, body = 500, {"error": f"inference failed: {exc}"}
        data = orjson.dumps(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": JSON_HEADERS + [(b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
