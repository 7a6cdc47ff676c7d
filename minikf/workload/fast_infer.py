"""The model server's runtime: the FashionCNN in ONNX Runtime, and the batcher.

- runtime: the FashionCNN exported to ONNX (input `input`, NCHW [N,1,28,28]; output `logits`
  [N,10]) and run by ONNX Runtime on one thread; frozen TorchScript, then eager, where that is
  not possible; each checked against the eager model (see compile_runtime). The evaluate step
  writes the export beside model.pt (export_onnx), so a server starts without importing torch.
- batching: requests that queue while the model runs go in together as one forward pass, on
  one worker thread, so the event loop keeps reading and answering while the model computes.
  The queue is bounded (a full queue is answered 503 at once) and a request that has waited
  past its deadline is answered 504 without being run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minikf.workload.served_model import (
    CallableRuntime,
    OrtRuntime,
    Runtime,
    ServedModel,
    TensorSpec,
    ort_session,
)

log = logging.getLogger("minikf.serve")

ONNX_FILE = "model.onnx"
ONNX_META = "model.onnx.json"
INPUT = TensorSpec("input", "FP32", (-1, 1, 28, 28))
LOGITS = TensorSpec("logits", "FP32", (-1, 10))


def _onnx_bytes(net) -> bytes:
    import io
    import warnings

    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        torch.onnx.export(net, (torch.zeros(1, *INPUT.shape[1:]),), buffer, input_names=[INPUT.name],
                          output_names=[LOGITS.name],
                          dynamic_axes={INPUT.name: {0: "batch"}, LOGITS.name: {0: "batch"}},
                          dynamo=False)
    return buffer.getvalue()


def _runner(session) -> Callable[[np.ndarray], np.ndarray]:
    """logits(x) for x shaped [N,28,28], [N,784] or the model's own [N,1,28,28]."""
    first = session.get_inputs()[0]
    name = first.name
    items = tuple(d for d in first.shape[1:] if isinstance(d, int))

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[1:] != items and len(items) == len(first.shape) - 1:
            x = x.reshape((len(x), *items))
        return session.run(None, {name: x})[0]
    return run


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _probe():
    import torch

    return torch.rand(4, *INPUT.shape[1:], generator=torch.Generator().manual_seed(0)).numpy()


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
        run = _runner(ort_session(data))
        probe = _probe()
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


def current_export(model_dir: Path) -> Path | None:
    """model.onnx if it was exported from the model.pt beside it (see export_onnx)."""
    model_dir = Path(model_dir)
    onnx, meta, weights = model_dir / ONNX_FILE, model_dir / ONNX_META, model_dir / "model.pt"
    try:
        if not (onnx.is_file() and meta.is_file() and weights.is_file()):
            return None
        if json.loads(meta.read_text()).get("sha256") != _sha256(weights):
            log.warning("%s is older than model.pt: serving model.pt", onnx)
            return None
        return onnx
    except (OSError, ValueError) as exc:
        log.warning("cannot use %s (%s): serving model.pt", onnx, exc)
        return None


def load_exported(model_dir: Path) -> Callable[[np.ndarray], np.ndarray] | None:
    """logits(x) from a current model.onnx (see export_onnx), without torch."""
    onnx = current_export(model_dir)
    if onnx is None:
        return None
    try:
        return _runner(ort_session(str(onnx)))
    except Exception as exc:  # a broken export: model.pt is still there
        log.warning("cannot use %s (%s): serving model.pt", onnx, exc)
        return None


def _torchscript(net) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    with torch.inference_mode():
        traced = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(net, torch.zeros(4, *INPUT.shape[1:]))))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return traced(torch.from_numpy(x)).numpy()
    return run


def compile_runtime(net) -> Runtime:
    """The fastest runtime that gives the eager model's logits.

    ONNX Runtime (several times faster than eager torch for this small CNN at batch 1-32 on
    one CPU thread), else frozen TorchScript, else eager; each candidate is checked against
    the eager model on batches of 1 and 4 and dropped, with a logged reason, if it differs.
    """
    import torch

    net = net.eval()
    probe = _probe()
    with torch.inference_mode():
        want = net(torch.from_numpy(probe)).numpy()

    def check(run) -> None:
        for got, expect in ((run(probe), want), (run(probe[:1]), want[:1])):
            if not np.allclose(got, expect, rtol=1e-3, atol=1e-4):
                raise ValueError("its logits differ from the eager model's")

    try:
        runtime = OrtRuntime(_onnx_bytes(net))
        check(lambda x: runtime.run({INPUT.name: x})[0])
        return runtime
    except Exception as exc:  # missing package or export problem: try the next one
        log.warning("runtime onnxruntime unavailable (%s)", exc)
    try:
        traced = _torchscript(net)
        check(traced)
        return CallableRuntime(traced, "pytorch_libtorch", [INPUT], [LOGITS])
    except Exception as exc:
        log.warning("runtime torchscript unavailable (%s)", exc)

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()
    return CallableRuntime(eager, "pytorch", [INPUT], [LOGITS])


def compile_model(net) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """compile_runtime as logits(x) for x shaped [N,28,28] or [N,1,28,28], and its platform."""
    runtime = compile_runtime(net)

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32).reshape((len(x), *INPUT.shape[1:]))
        return runtime.run({INPUT.name: x})[0]
    return run, runtime.platform


def fashion_runtime(model_dir: Path) -> Runtime:
    """The journey's model dir: its current model.onnx without torch, else model.pt compiled."""
    onnx = current_export(model_dir)
    if onnx is not None:
        try:
            return OrtRuntime(str(onnx))
        except Exception as exc:  # a broken export: model.pt is still there
            log.warning("cannot use %s (%s): serving model.pt", onnx, exc)
    import torch

    from minikf.workload.model import load_model

    torch.set_num_threads(1)  # a tiny model: one thread per server process
    return compile_runtime(load_model(model_dir))


class Overloaded(Exception):
    """The queue is full: answered 503 with Retry-After."""


class DeadlineExceeded(Exception):
    """The request waited for the model past its deadline: answered 504, never run."""


@dataclass
class _Item:
    feeds: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future
    deadline: float
    queued_at: float


class Batcher:
    """Runs a ServedModel on one worker thread, with a bounded queue and deadlines.

    While the model computes, arriving requests queue; when it is done, everything queued (up to
    max_batch rows) runs as one forward pass, so a loaded server does one batch of N instead of N
    batches of 1, at no added wait for a lone request. A model that cannot batch (several
    inputs, dynamic item shapes) runs its requests one at a time through the same queue.
    """

    def __init__(self, model: ServedModel, max_queue: int = 32, deadline_s: float = 10.0) -> None:
        self.model = model
        self.max_queue = max_queue
        self.deadline_s = deadline_s
        self.pending: deque[_Item] = deque()
        self.queued = 0  # admitted and not yet answered
        self.running = False
        self.scheduled = False
        self.batches = 0
        self.rows = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def full(self) -> bool:
        return self.queued >= self.max_queue

    async def run(self, feeds: dict[str, np.ndarray], timeout_s: float | None = None) -> list[np.ndarray]:
        """The model's outputs for this request's rows; Overloaded, DeadlineExceeded, or the
        model's own exception."""
        if self.queued >= self.max_queue:
            raise Overloaded(f"server busy: {self.queued} requests queued (limit {self.max_queue})")
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = self.deadline_s if timeout_s is None else min(self.deadline_s, timeout_s)
        rows = len(next(iter(feeds.values()))) if self.model.batched else 1
        item = _Item(feeds, rows, loop.create_future(), now + wait, now)
        self.pending.append(item)
        self.queued += 1
        try:
            if not self.running and not self.scheduled:
                self.scheduled = True  # after this loop turn: requests read in it go in together
                loop.call_soon(self._dispatch)
            return await item.future
        finally:
            self.queued -= 1

    def _take(self) -> list[_Item]:
        now = asyncio.get_running_loop().time() if self.pending else 0.0
        group, rows = [], 0
        while self.pending:
            item = self.pending[0]
            if item.future.done():
                self.pending.popleft()
                continue
            if now > item.deadline:
                self.pending.popleft()
                item.future.set_exception(DeadlineExceeded(
                    f"request waited {now - item.queued_at:.3f} s for the model, over its deadline of "
                    f"{item.deadline - item.queued_at:.3f} s"))
                continue
            if group and (not self.model.batchable or rows + item.rows > self.model.max_batch):
                break
            group.append(self.pending.popleft())
            rows += item.rows
        return group

    def _dispatch(self) -> None:
        self.scheduled = False
        if self.running:
            return
        group = self._take()
        if not group:
            return
        if len(group) == 1:
            feeds = group[0].feeds
        else:
            feeds = {name: np.concatenate([g.feeds[name] for g in group]) for name in group[0].feeds}
        self.running = True
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.model.runtime.run, feeds)
        future.add_done_callback(lambda f: self._done(group, f))

    def _done(self, group: list[_Item], future: asyncio.Future) -> None:
        self.running = False
        exc = future.exception()
        if exc is not None:
            log.error("inference failed for a batch of %d request(s): %s", len(group), exc)
            for item in group:
                if not item.future.done():
                    item.future.set_exception(exc)
        else:
            results = future.result()
            self.batches += 1
            self.rows += sum(g.rows for g in group)
            start = 0
            for item in group:
                if not item.future.done():
                    item.future.set_result(results if len(group) == 1 else
                                           [r[start:start + item.rows] for r in results])
                start += item.rows
        if self.pending:
            self._dispatch()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
