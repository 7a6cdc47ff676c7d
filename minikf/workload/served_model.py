"""A model as the server sees it: its tensors (OIP metadata), its runtime, and the checks that
turn a request's tensors into the model's inputs.

Any ONNX model can be served: its inputs and outputs (names, datatypes, shapes with -1 for a
dynamic dimension) come from the graph. A classifier, i.e. a model with one floating-point output
shaped [batch, classes], also gets two named outputs of its own:
- `predictions`: INT64 [N], the class id (argmax) of each row;
- `probabilities`: FP32 [N, classes]: the output itself when the graph ends in Softmax, else
  the softmax of its logits.
The journey's FashionCNN is one such model (its model.pt is exported to ONNX at load when there
is no current model.onnx beside it).

An input may come in any shape the model can take: its own, the same with size-1 dimensions
left out or added (NCHW [N,1,28,28] and [N,28,28]), or flattened per item ([N,784]).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minikf.workload.oip import DTYPES, Tensor

FASHION_NAME = "fashion-mnist"
DEFAULT_VERSION = "1"

# ONNX Runtime's type strings -> OIP datatypes (tensor types only: sequences and maps cannot be
# served over this protocol).
_ORT_TYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
}


class ModelError(ValueError):
    """A model file the server cannot serve (the message says why)."""


class InputError(ValueError):
    """A request the model cannot take; answered 400 with {"error": message}."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def describe(self) -> str:
        return f"{self.name!r} ({self.datatype} [{','.join(map(str, self.shape))}])"


class Runtime:
    """What runs a model: its tensors and `run(feeds) -> one array per output, in order`."""

    platform = ""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    softmax_outputs: frozenset[str] = frozenset()  # outputs the graph's last node is a Softmax for

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


def ort_session(model: bytes | str):
    """ONNX Runtime on one thread (the server is one process pinned to its share of CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _spec(arg, where: str) -> TensorSpec:
    datatype = _ORT_TYPES.get(arg.type)
    if datatype is None:
        raise ModelError(f"{where} {arg.name!r} is of type {arg.type}; this server takes and gives "
                         f"numeric tensors only ({', '.join(sorted(set(_ORT_TYPES.values())))})")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, datatype, shape)


def _softmax_outputs(model: bytes | str) -> frozenset[str]:
    """Graph outputs that a Softmax node produces (already probabilities)."""
    try:
        import onnx

        proto = (onnx.load_from_string(model) if isinstance(model, bytes)
                 else onnx.load(model, load_external_data=False))
    except Exception:  # metadata only: without it, probabilities are the softmax of the output
        return frozenset()
    produced = {out: node.op_type for node in proto.graph.node for out in node.output}
    return frozenset(o.name for o in proto.graph.output if produced.get(o.name) == "Softmax")


class OrtRuntime(Runtime):
    platform = "onnxruntime_onnx"

    def __init__(self, model: bytes | str) -> None:
        try:
            self.session = ort_session(model)
        except Exception as exc:
            where = "the exported model" if isinstance(model, bytes) else model
            raise ModelError(f"ONNX Runtime cannot load {where}: {exc}") from None
        self.inputs = [_spec(a, "input") for a in self.session.get_inputs()]
        self.outputs = [_spec(a, "output") for a in self.session.get_outputs()]
        self.softmax_outputs = _softmax_outputs(model)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)


class CallableRuntime(Runtime):
    """A Python callable (TorchScript or eager torch) for a one-input, one-output model."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], platform: str,
                 inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        self.fn, self.platform, self.inputs, self.outputs = fn, platform, inputs, outputs

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.fn(feeds[self.inputs[0].name])]


def _squeezed(dims) -> tuple[int, ...]:
    return tuple(d for d in dims if d != 1)


def accepted_shapes(spec: TensorSpec) -> list[str]:
    """The shapes an input may come in, for error messages: [N,1,28,28], [N,28,28] or [N,784]."""
    batched = bool(spec.shape) and spec.shape[0] == -1
    items = list(spec.shape[1:] if batched else spec.shape)
    lead = ["N"] if batched else []
    forms = [lead + items]
    if -1 not in items:
        if _squeezed(items) != tuple(items):
            forms.append(lead + list(_squeezed(items)))
        if batched and len(_squeezed(items)) > 1:
            forms.append(lead + [int(np.prod(items))])
    return ["[" + ",".join(map(str, f)) + "]" for f in forms]


def fit_shape(spec: TensorSpec, shape: list[int]) -> tuple[int, ...] | None:
    """The model's own shape for a request shape it can take, or None."""
    declared = spec.shape
    if len(shape) == len(declared) and all(d in (-1, s) for d, s in zip(declared, shape, strict=True)):
        return tuple(shape)
    if -1 in declared[1:]:
        return None  # a dynamic inner dimension: only the model's own layout is unambiguous
    batched = bool(declared) and declared[0] == -1
    if batched:
        if not shape:
            return None
        items, given = declared[1:], shape[1:]
        target = (shape[0], *items)
    else:
        items, given, target = declared, shape, declared
    if _squeezed(given) == _squeezed(items):
        return target
    if batched and len(given) == 1 and given[0] == int(np.prod(items)):
        return target
    return None


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32, copy=False)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class ServedModel:
    """One model behind the server: metadata, request checks, named outputs."""

    def __init__(self, name: str, runtime: Runtime, version: str = DEFAULT_VERSION,
                 max_batch: int = 256) -> None:
        if not runtime.inputs:
            raise ModelError(f"model {name!r} has no inputs")
        self.name, self.runtime, self.version, self.max_batch = name, runtime, version, max_batch
        self.inputs = runtime.inputs
        self.graph_outputs = runtime.outputs
        graph_names = {o.name for o in self.graph_outputs}
        first = self.inputs[0]
        self.batched = all(s.shape and s.shape[0] == -1 for s in (*self.inputs, *self.graph_outputs))
        # One input with a fixed item shape: requests can be concatenated into one batch.
        self.batchable = self.batched and len(self.inputs) == 1 and -1 not in first.shape[1:]
        # A classifier: one floating-point [batch, classes] output.
        self.scores: int | None = None
        outs = self.graph_outputs
        if (len(outs) == 1 and outs[0].datatype in ("FP16", "FP32", "FP64") and len(outs[0].shape) == 2
                and outs[0].shape[0] == -1 and outs[0].shape[1] >= 2):
            self.scores = 0
        derived = []
        if self.scores is not None:
            classes = outs[0].shape[1]
            derived = [TensorSpec(n, d, s) for n, d, s in (("predictions", "INT64", (-1,)),
                                                           ("probabilities", "FP32", (-1, classes)))
                       if n not in graph_names]
        self.derived = {s.name for s in derived}
        self.outputs = derived + list(self.graph_outputs)
        self.output_specs = {s.name: s for s in self.outputs}
        self.input_specs = {s.name: s for s in self.inputs}

    # -- metadata ----------------------------------------------------------------------------
    def metadata(self) -> dict:
        return {"name": self.name, "versions": [self.version], "platform": self.runtime.platform,
                "inputs": [s.to_json() for s in self.inputs],
                "outputs": [s.to_json() for s in self.outputs]}

    def kserve_types(self) -> tuple[list[dict], list[dict]]:
        return [s.to_json() for s in self.inputs], [s.to_json() for s in self.outputs]

    # -- requests ----------------------------------------------------------------------------
    def _check(self, spec: TensorSpec, array: np.ndarray, shape: list[int], where: str) -> np.ndarray:
        target = fit_shape(spec, shape)
        if target is None:
            forms = accepted_shapes(spec)
            forms = ", ".join(forms[:-1]) + " or " + forms[-1] if len(forms) > 1 else forms[0]
            raise InputError(f"{where} has shape [{','.join(map(str, shape))}]; model {self.name!r} "
                             f"takes it as {forms}")
        if self.batched:
            if target[0] == 0:
                raise InputError(f"{where}: empty batch, send at least one item")
            if target[0] > self.max_batch:
                raise InputError(f"{where}: batch of {target[0]} is over the limit of {self.max_batch}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InputError(f"{where} contains NaN or infinite values")
        return np.ascontiguousarray(array.reshape(target))

    def feeds_v2(self, tensors: list[Tensor]) -> dict[str, np.ndarray]:
        """The request's tensors, checked by name, datatype and shape, as the model's inputs."""
        given = {t.name: t for t in tensors}
        unknown = [n for n in given if n not in self.input_specs]
        if unknown:
            takes = ", ".join(s.describe() for s in self.inputs)
            raise InputError(f"unknown input {unknown[0]!r}: model {self.name!r} takes {takes}")
        missing = [s.name for s in self.inputs if s.name not in given]
        if missing:
            raise InputError(f"missing input {missing[0]!r}: model {self.name!r} takes "
                             + ", ".join(s.describe() for s in self.inputs))
        feeds = {}
        for spec in self.inputs:
            tensor = given[spec.name]
            where = f"input {spec.name!r}"
            if tensor.datatype != spec.datatype:
                raise InputError(f"{where} must have datatype {spec.datatype}, got {tensor.datatype}")
            feeds[spec.name] = self._check(spec, tensor.array, tensor.shape, where)
        if self.batched and len({len(a) for a in feeds.values()}) > 1:
            raise InputError("inputs have different batch sizes: "
                             + ", ".join(f"{n} {len(a)}" for n, a in feeds.items()))
        return feeds

    def feeds_v1(self, payload) -> dict[str, np.ndarray]:
        """V1 {"instances": [item, ...]}: each item shaped like one row of the model's only input."""
        spec = self.inputs[0]
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise InputError(f'V1 request needs "instances": a list of items shaped like '
                             f'{list(spec.shape[1:])}')
        if len(self.inputs) != 1 or not self.batched:
            raise InputError(f"model {self.name!r} takes {len(self.inputs)} inputs; use V2 infer")
        instances = payload["instances"]
        if not instances:
            raise InputError("empty batch: send at least one instance")
        if len(instances) > self.max_batch:
            raise InputError(f"batch of {len(instances)} instances is over the limit of {self.max_batch}")
        try:
            array = np.asarray(instances, dtype=DTYPES[spec.datatype])
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"instances must be numeric nested lists of shape "
                             f"[N,{','.join(map(str, spec.shape[1:]))}] ({exc})") from None
        return {spec.name: self._check(spec, array, list(array.shape), "instances")}

    def requested(self, names: list[str] | None) -> list[TensorSpec]:
        if names is None:
            return self.outputs
        unknown = [n for n in names if n not in self.output_specs]
        if unknown:
            raise InputError(f"unknown output {unknown[0]!r}: model {self.name!r} has outputs "
                             + ", ".join(s.name for s in self.outputs))
        return [self.output_specs[n] for n in names]

    def named_outputs(self, results: list[np.ndarray], wanted: list[TensorSpec]) -> list[np.ndarray]:
        """The arrays for `wanted`, from the graph's outputs (derived ones computed here)."""
        by_name = {s.name: r for s, r in zip(self.graph_outputs, results, strict=True)}
        out = []
        for spec in wanted:
            if spec.name == "predictions" and spec.name in self.derived:
                out.append(results[self.scores].argmax(axis=1).astype(np.int64))
            elif spec.name == "probabilities" and spec.name in self.derived:
                scores = results[self.scores]
                if self.graph_outputs[self.scores].name in self.runtime.softmax_outputs:
                    out.append(scores.astype(np.float32, copy=False))
                else:
                    out.append(_softmax(scores))
            else:
                out.append(by_name[spec.name])
        return out

    def v1_predictions(self, results: list[np.ndarray]) -> list:
        """V1's "predictions": class ids for a classifier, else the first output's rows."""
        if self.scores is not None:
            return results[self.scores].argmax(axis=1).tolist()
        return results[0].tolist()


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ModelError(f"model name {name!r}: use letters, digits, '.', '_' and '-' "
                         f"(it is part of the URL)")
    return name


def default_name(path: Path) -> str:
    """fashion-mnist for the journey's model dir; else the ONNX file's stem (its dir's name for
    model.onnx), with anything a URL path segment should not hold replaced by '-'."""
    path = Path(path)
    if path.is_dir() and (path / "model.pt").is_file():
        return FASHION_NAME
    onnx = path if path.is_file() else find_onnx(path)
    stem = onnx.parent.name if onnx.stem == "model" else onnx.stem
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem).strip("-._") or "model"


def find_onnx(directory: Path) -> Path:
    files = sorted(p for p in Path(directory).glob("*.onnx") if p.is_file())
    if not files:
        raise ModelError(f"{directory}: no model here (expected model.pt + model.json, or an .onnx file)")
    if len(files) > 1:
        if (Path(directory) / "model.onnx") in files:
            return Path(directory) / "model.onnx"
        raise ModelError(f"{directory}: more than one .onnx file ({', '.join(p.name for p in files)}); "
                         f"pass the file itself")
    return files[0]


def describe_model_path(path: Path) -> str | None:
    """Why `path` cannot be served (one line), or None when it looks servable."""
    path = Path(path)
    if path.is_file():
        return None if path.suffix == ".onnx" else f"{path}: not an ONNX file (expected *.onnx)"
    if not path.is_dir():
        return f"{path}: no such file or directory"
    if (path / "model.pt").is_file():
        return None
    try:
        find_onnx(path)
    except ModelError as exc:
        return str(exc)
    return None


def open_model(path: str | Path, name: str | None = None, max_batch: int = 256) -> ServedModel:
    """The model at `path`: an .onnx file, a directory with one, or the journey's model dir
    (model.pt + model.json, with its model.onnx when that is current)."""
    path = Path(path)
    problem = describe_model_path(path)
    if problem:
        raise ModelError(problem)
    name = check_name(name or default_name(path))
    if path.is_dir() and (path / "model.pt").is_file():
        from minikf.workload.fast_infer import fashion_runtime

        runtime = fashion_runtime(path)
    else:
        runtime = OrtRuntime(str(path if path.is_file() else find_onnx(path)))
    return ServedModel(name, runtime, max_batch=max_batch)

