"""The Open Inference Protocol (V2) over HTTP: request decoding and response encoding.

Covers the JSON form and the binary tensor data extension (a JSON header of
`Inference-Header-Content-Length` bytes, then each binary tensor's raw little-endian bytes
in input order). Nothing here knows a model: the caller checks names, datatypes and shapes
against its model's metadata. Every malformed request raises ProtocolError with a message that
names the field and what was expected; the server answers it as 400.

What clients send, checked against tritonclient.http and kserve.InferenceRESTClient:
- tritonclient's default: every input binary (`parameters.binary_data_size`), no Content-Type,
  no `outputs` but `parameters.binary_data_output: true` (so every output comes back binary);
- KServe's client: binary inputs with `content-type: application/octet-stream`, or plain JSON;
- JSON tensor data may be flat or nested, in row-major order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import orjson

HEADER_LENGTH = "inference-header-content-length"

# OIP datatype -> little-endian numpy dtype (the binary extension's byte order). BYTES has no
# fixed-size element; no served model here takes or gives it.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
KNOWN_DATATYPES = (*DTYPES, "BYTES", "BF16")


class ProtocolError(ValueError):
    """A request that breaks the protocol; answered with `status` and {"error": message}."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray


@dataclass
class RequestedOutput:
    name: str
    binary: bool | None  # None: the request-wide binary_data_output decides


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None  # None: every output the model has
    binary_output: bool = False  # parameters.binary_data_output
    timeout_s: float | None = None  # parameters.timeout (microseconds on the wire)
    parameters: dict = field(default_factory=dict)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip or deflate request body (tritonclient's request_compression_algorithm), inflated to
    at most `limit` bytes so a small compressed body cannot blow up in memory."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ProtocolError(f"Content-Encoding {encoding!r} is not supported (use gzip, deflate or none)",
                            415)
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(f"body is not valid {encoding} data ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ProtocolError(f"request body over {limit} bytes once decompressed", 413)
    return out


def parse_json(data: bytes, what: str = "JSON body") -> dict:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"malformed {what}: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"request body must be a JSON object, got {type(obj).__name__}")
    return obj


def _header_length(value: str | None, size: int) -> int | None:
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise ProtocolError(f"Inference-Header-Content-Length must be an integer, got {value!r}") from None
    if not 0 < length <= size:
        raise ProtocolError(f"Inference-Header-Content-Length is {length} but the body has {size} bytes")
    return length


def _parameters(obj: dict, where: str) -> dict:
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ProtocolError(f"{where} parameters must be an object, got {type(params).__name__}")
    return params


def _flag(params: dict, key: str, where: str) -> bool | None:
    value = params.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ProtocolError(f"{where} parameters.{key} must be true or false, got {value!r}")


def _shape(value, where: str) -> list[int]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise ProtocolError(f"{where} shape must be a list of non-negative integers, got {value!r}")
    return value


def _count(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _has_bool(data) -> bool:
    """Whether a (nested) JSON list holds true/false anywhere (numpy would take them as 1/0)."""
    for value in data:
        if value is True or value is False:
            return True
        if type(value) is list and _has_bool(value):
            return True
    return False


def _json_array(data, datatype: str, shape: list[int], where: str, may_hold_bools: bool) -> np.ndarray:
    """JSON tensor data (flat or nested, row-major) as an array of `datatype`, strictly: numbers for
    FP*, integers for INT*/UINT*, true/false for BOOL; nothing else is converted."""
    if not isinstance(data, list):
        raise ProtocolError(f"{where} data must be a list, got {type(data).__name__}")
    try:
        natural = np.array(data)
    except ValueError as exc:  # ragged nesting
        raise ProtocolError(f"{where} data is not a regular (row-major) array: {exc}") from None
    kind = natural.dtype.kind
    if datatype == "BOOL":
        ok = kind == "b" or natural.size == 0
        want = "true/false values"
    elif datatype.startswith(("INT", "UINT")):
        ok = kind in "iu" or natural.size == 0
        want = "integers"
    else:
        ok = kind in "fiu" or natural.size == 0
        want = "numbers"
    found = {"b": "true/false", "U": "strings", "O": "nulls, objects or mixed values",
             "f": "fractional numbers"}.get(kind, f"values of kind {kind!r}")
    # numpy takes true/false mixed with numbers as 1/0: look for them only when the raw body
    # has the tokens at all (it almost never does in a numeric tensor).
    if ok and datatype != "BOOL" and may_hold_bools and _has_bool(data):
        ok, found = False, "true/false among the numbers"
    if not ok:
        raise ProtocolError(f"{where} data must hold {want} for datatype {datatype}, found {found}")
    if natural.size != _count(shape):
        raise ProtocolError(f"{where} data has {natural.size} values, shape {shape} needs {_count(shape)}")
    dtype = DTYPES[datatype]
    if kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if natural.size and (natural.min() < info.min or natural.max() > info.max):
            raise ProtocolError(f"{where} data has values outside the {datatype} range "
                                f"[{info.min}, {info.max}]")
    return natural.astype(dtype, copy=False).reshape(shape)


def _binary_array(raw: bytes, datatype: str, shape: list[int], where: str) -> np.ndarray:
    dtype = DTYPES[datatype]
    need = _count(shape) * dtype.itemsize
    if len(raw) != need:
        raise ProtocolError(f"{where} has {len(raw)} bytes of binary data, shape {shape} of "
                            f"{datatype} needs {need}")
    if datatype == "BOOL":
        as_bytes = np.frombuffer(raw, dtype=np.uint8)
        if as_bytes.size and as_bytes.max() > 1:
            raise ProtocolError(f"{where} BOOL binary data must be bytes 0 or 1")
        return as_bytes.view(np.bool_).reshape(shape)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def decode_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """An inference request from its HTTP body (and Inference-Header-Content-Length, if any)."""
    length = _header_length(header_length, len(body))
    head = body if length is None else body[:length]
    req = parse_json(head, "JSON body (binary tensor data needs an Inference-Header-Content-Length "
                           "header)" if length is None else
                     f"JSON header (the first {length} bytes, per Inference-Header-Content-Length)")
    binary = memoryview(body)[length:] if length is not None else memoryview(b"")
    may_hold_bools = b"true" in head or b"false" in head
    params = _parameters(req, "request")
    request_id = req.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f"request.id must be a string, got {type(request_id).__name__}")
    timeout_s = None
    if params.get("timeout") is not None:
        timeout = params["timeout"]
        if type(timeout) is not int or timeout < 0:
            raise ProtocolError(f"request.parameters.timeout must be a non-negative integer of "
                                f"microseconds, got {timeout!r}")
        timeout_s = timeout / 1e6

    raw_inputs = req.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError('request needs "inputs": a non-empty list of tensors')
    inputs, offset, seen = [], 0, set()
    for i, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict):
            raise ProtocolError(f"inputs[{i}] must be an object, got {type(raw).__name__}")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"inputs[{i}].name must be a non-empty string")
        where = f"input {name!r}"
        if name in seen:
            raise ProtocolError(f"{where} is given twice")
        seen.add(name)
        datatype = raw.get("datatype")
        if datatype not in KNOWN_DATATYPES:
            raise ProtocolError(f"{where} datatype must be one of {', '.join(KNOWN_DATATYPES)}, "
                                f"got {datatype!r}")
        if datatype not in DTYPES:
            raise ProtocolError(f"{where}: datatype {datatype} is not supported by this server")
        shape = _shape(raw.get("shape"), where)
        tparams = _parameters(raw, where)
        if "shared_memory_region" in tparams:
            raise ProtocolError(f"{where}: shared memory inputs are not supported; send the data")
        size = tparams.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0:
                raise ProtocolError(f"{where} parameters.binary_data_size must be a non-negative "
                                    f"integer, got {size!r}")
            if "data" in raw:
                raise ProtocolError(f"{where} has both data and binary_data_size; send one")
            if length is None:
                raise ProtocolError(f"{where} has binary_data_size but the request has no "
                                    f"Inference-Header-Content-Length header")
            if offset + size > len(binary):
                raise ProtocolError(f"{where}: binary_data_size {size} runs past the end of the body "
                                    f"({len(binary) - offset} bytes left)")
            array = _binary_array(binary[offset:offset + size], datatype, shape, where)
            offset += size
        elif "data" in raw:
            array = _json_array(raw["data"], datatype, shape, where, may_hold_bools)
        else:
            raise ProtocolError(f"{where} has no data (neither data nor parameters.binary_data_size)")
        inputs.append(Tensor(name, datatype, shape, array))
    if offset != len(binary):
        raise ProtocolError(f"the body has {len(binary)} bytes after the JSON header, the inputs' "
                            f"binary_data_size add up to {offset}")

    outputs = None
    raw_outputs = req.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise ProtocolError('request "outputs" must be a list of {"name": ...} objects')
        outputs, names = [], set()
        for i, raw in enumerate(raw_outputs):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise ProtocolError(f"outputs[{i}] must be an object with a string name")
            where = f"output {raw['name']!r}"
            if raw["name"] in names:
                raise ProtocolError(f"{where} is requested twice")
            names.add(raw["name"])
            oparams = _parameters(raw, where)
            if "classification" in oparams:
                raise ProtocolError(f"{where}: the classification extension is not supported; ask for "
                                    f"the probabilities output instead")
            if "shared_memory_region" in oparams:
                raise ProtocolError(f"{where}: shared memory outputs are not supported")
            outputs.append(RequestedOutput(raw["name"], _flag(oparams, "binary_data", where)))
    return InferRequest(id=request_id, inputs=inputs, outputs=outputs,
                        binary_output=bool(_flag(params, "binary_data_output", "request")),
                        timeout_s=timeout_s, parameters=params)


def encode_response(model_name: str, model_version: str | None, request_id: str | None,
                    outputs: list[tuple[str, str, np.ndarray, bool]]) -> tuple[bytes, int | None]:
    """The response body for (name, datatype, array, binary) outputs, and the JSON header's
    length when any output is binary (for Inference-Header-Content-Length), else None."""
    tensors, raw = [], []
    for name, datatype, array, binary in outputs:
        array = np.ascontiguousarray(array, dtype=DTYPES[datatype])
        tensor = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            data = array.tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            tensor["data"] = array.ravel()
        tensors.append(tensor)
    head = orjson.dumps({"model_name": model_name, "model_version": model_version,
                         "id": request_id or "", "outputs": tensors},
                        option=orjson.OPT_SERIALIZE_NUMPY)
    if not raw:
        return head, None
    return b"".join([head, *raw]), len(head)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})
