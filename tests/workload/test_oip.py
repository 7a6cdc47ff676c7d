"""The Open Inference Protocol codec and the shape rules, without a server: what is taken, what
is refused (and how the refusal reads), and that real clients parse what is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minikf.workload import oip
from minikf.workload.oip import ProtocolError
from minikf.workload.served_model import TensorSpec, accepted_shapes, fit_shape


def _json(tensor: dict, **extra) -> bytes:
    return json.dumps({"inputs": [tensor], **extra}).encode()


@pytest.mark.parametrize("datatype,data,dtype", [
    ("FP32", [1, 2.5, -3], np.float32),
    ("FP64", [[1.0, 2.0, 3.0]], np.float64),
    ("INT32", [1, -2, 3], np.int32),
    ("UINT8", [0, 255, 7], np.uint8),
    ("BOOL", [True, False, True], np.bool_),
])
def test_json_tensors_of_every_kind(datatype, data, dtype):
    req = oip.decode_request(_json({"name": "t", "datatype": datatype, "shape": [1, 3], "data": data}))
    (tensor,) = req.inputs
    assert tensor.array.dtype == dtype and tensor.array.shape == (1, 3)
    assert tensor.array.ravel().tolist() == np.asarray(data, dtype).ravel().tolist()


@pytest.mark.parametrize("datatype,data,words", [
    ("FP32", [True, False, True], "found true/false"),
    ("FP32", [1.0, True, 2.0], "true/false among the numbers"),
    ("FP32", ["1", "2", "3"], "strings"),
    ("FP32", [1.0, None, 2.0], "nulls"),
    ("INT32", [1.0, 2.5, 3.0], "integers"),
    ("INT32", [1, True, 3], "true/false among"),
    ("UINT8", [0, 256, 1], "outside the UINT8 range"),
    ("INT64", [1, 2, 2**64], "integers"),
    ("BOOL", [1, 0, 1], "true/false values"),
    ("FP32", [[1.0, 2.0], [3.0]], "row-major"),
    ("FP32", [1.0, 2.0], "2 values"),
    ("FP32", 1.0, "must be a list"),
])
def test_json_data_is_checked_strictly(datatype, data, words):
    with pytest.raises(ProtocolError, match=words):
        oip.decode_request(_json({"name": "t", "datatype": datatype, "shape": [1, 3], "data": data}))


def test_binary_inputs_and_their_framing():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([[True, False]])
    head = json.dumps({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}},
        {"name": "b", "datatype": "BOOL", "shape": [1, 2], "parameters": {"binary_data_size": 2}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "z"}],
        "parameters": {"binary_data_output": False, "timeout": 2500}}).encode()
    body = head + a.tobytes() + b.tobytes()
    req = oip.decode_request(body, str(len(head)))
    assert req.inputs[0].array.tolist() == a.tolist() and req.inputs[1].array.tolist() == b.tolist()
    assert [(o.name, o.binary) for o in req.outputs] == [("y", True), ("z", None)]
    assert req.binary_output is False and req.timeout_s == 0.0025

    for bad_body, length, words in [
        (body, None, "malformed JSON body .binary tensor data needs an Inference-Header-Content-Length"),
        (head, None, "binary_data_size but the request has no Inference-Header-Content-Length"),
        (body, "abc", "must be an integer"),
        (body, str(len(body) + 1), "but the body has"),
        (body + b"\0", str(len(head)), "add up to 26"),
        (head + a.tobytes() + b"\2\0", str(len(head)), "BOOL binary data must be bytes 0 or 1"),
        (body[:-1], str(len(head)), "runs past the end"),
        (body, str(len(head) - 1), "malformed JSON header"),
    ]:
        with pytest.raises(ProtocolError, match=words):
            oip.decode_request(bad_body, length)


def test_decompression_is_capped():
    import gzip

    body = gzip.compress(b"x" * 1000)
    assert oip.decompress(body, "gzip", 1000) == b"x" * 1000
    with pytest.raises(ProtocolError, match="over 999 bytes") as caught:
        oip.decompress(body, "gzip", 999)
    assert caught.value.status == 413
    with pytest.raises(ProtocolError, match="not valid deflate"):
        oip.decompress(b"nope", "deflate", 100)


def test_responses_parse_in_tritonclient_and_kserve():
    """The encoder's binary framing, read back by both real clients' own parsers."""
    from kserve import InferResponse
    from tritonclient.http import InferResult

    preds = np.array([3, 1], dtype=np.int64)
    probs = np.random.default_rng(0).random((2, 4), dtype=np.float32)
    body, length = oip.encode_response("m", "1", "r1", [("predictions", "INT64", preds, True),
                                                        ("probabilities", "FP32", probs, False)])
    result = InferResult.from_response_body(body, header_length=length)
    assert result.as_numpy("predictions").tolist() == [3, 1]
    np.testing.assert_allclose(result.as_numpy("probabilities"), probs)
    response = InferResponse.from_bytes(body, length)
    assert response.id == "r1" and response.outputs[0].as_numpy().tolist() == [3, 1]
    body, length = oip.encode_response("m", "1", None, [("probabilities", "FP32", probs, False)])
    assert length is None and json.loads(body)["outputs"][0]["shape"] == [2, 4]


def test_shapes_a_model_can_take():
    nchw = TensorSpec("input", "FP32", (-1, 1, 28, 28))
    for shape in ([3, 1, 28, 28], [3, 28, 28], [3, 784], [3, 28, 28, 1]):
        assert fit_shape(nchw, shape) == (3, 1, 28, 28), shape
    for shape in ([28, 28], [3, 27, 28], [3, 1, 784], [], [3, 2, 392]):
        assert fit_shape(nchw, shape) is None, shape
    assert accepted_shapes(nchw) == ["[N,1,28,28]", "[N,28,28]", "[N,784]"]
    flat = TensorSpec("pixels", "FP32", (-1, 784))
    assert fit_shape(flat, [2, 784]) == (2, 784) and fit_shape(flat, [2, 28, 28]) is None
    assert accepted_shapes(flat) == ["[N,784]"]
    dynamic = TensorSpec("tokens", "INT64", (-1, -1))
    assert fit_shape(dynamic, [2, 7]) == (2, 7) and fit_shape(dynamic, [2, 7, 1]) is None
    fixed = TensorSpec("x", "FP32", (1, 4))
    assert fit_shape(fixed, [4]) == (1, 4) and fit_shape(fixed, [2, 4]) is None
