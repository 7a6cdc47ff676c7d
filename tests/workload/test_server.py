"""The real model server as a subprocess, spoken to in plain HTTP: the Open Inference Protocol
(metadata, ready, infer in JSON and binary, named outputs), V1, the token, 4xx with messages."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
import requests

from tests.workload.model_servers import AUTH, TOKEN

MODEL = "fashion-mnist"
V2 = f"/v2/models/{MODEL}"


def _v2(server, inputs, outputs=None, parameters=None, headers=AUTH, path=V2 + "/infer"):
    body = {"inputs": inputs}
    if outputs is not None:
        body["outputs"] = outputs
    if parameters is not None:
        body["parameters"] = parameters
    return requests.post(server["url"] + path, json=body, headers=headers, timeout=30)


def _binary_request(tensors, outputs=None, parameters=None) -> tuple[bytes, dict]:
    """The binary tensor data extension by hand: JSON header, then each input's raw bytes."""
    head = {"inputs": [{"name": n, "datatype": d, "shape": list(a.shape),
                        "parameters": {"binary_data_size": a.nbytes}} for n, d, a in tensors]}
    if outputs is not None:
        head["outputs"] = outputs
    if parameters is not None:
        head["parameters"] = parameters
    header = json.dumps(head).encode()
    body = header + b"".join(a.astype(a.dtype.newbyteorder("<")).tobytes() for _, _, a in tensors)
    return body, {**AUTH, "Inference-Header-Content-Length": str(len(header))}


def _split_binary(response) -> tuple[dict, dict[str, np.ndarray]]:
    """A binary response: its JSON header and each output as an array."""
    length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:length])
    arrays, offset = {}, length
    for out in head["outputs"]:
        dtype = {"INT64": "<i8", "FP32": "<f4"}[out["datatype"]]
        if "parameters" in out and out["parameters"] and "binary_data_size" in out["parameters"]:
            size = out["parameters"]["binary_data_size"]
            arrays[out["name"]] = np.frombuffer(response.content[offset:offset + size], dtype).reshape(
                out["shape"])
            offset += size
        else:
            arrays[out["name"]] = np.asarray(out["data"], dtype).reshape(out["shape"])
    assert offset == len(response.content)
    return head, arrays


def test_metadata_ready_and_versions(fashion_server):
    """What a generic client needs to build a request: each tensor's name, datatype and shape."""
    url = fashion_server["url"]
    meta = requests.get(url + V2, headers=AUTH, timeout=5)
    assert meta.status_code == 200
    assert meta.json() == {
        "name": MODEL, "versions": ["1"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}],
        "outputs": [{"name": "predictions", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                    {"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]}
    assert requests.get(url + V2 + "/versions/1", headers=AUTH, timeout=5).json() == meta.json()
    for path in (V2 + "/ready", V2 + "/versions/1/ready"):
        r = requests.get(url + path, headers=AUTH, timeout=5)
        assert r.status_code == 200 and r.json() == {"name": MODEL, "ready": True}
    r = requests.get(url + V2 + "/versions/2/ready", headers=AUTH, timeout=5)
    assert r.status_code == 404 and "versions: 1" in r.json()["error"]
    r = requests.get(url + "/v2/models/other", headers=AUTH, timeout=5)
    assert r.status_code == 404 and MODEL in r.json()["error"]
    r = requests.post(url + V2, headers=AUTH, timeout=5)
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert "binary_tensor_data" in requests.get(url + "/v2", headers=AUTH, timeout=5).json()["extensions"]
    assert requests.get(url + "/v2/health/live", headers=AUTH, timeout=5).status_code == 200


def test_every_input_shape_and_both_protocols_agree_with_the_model(fashion_server, fashion_sample,
                                                                   trained_fashion):
    """Real test images as NCHW, as 28x28, flattened, nested or flat, V1 or V2: the in-process
    model's classes every time."""
    x = fashion_sample["x_test"][:16]
    want = trained_fashion["predictions"][:16].tolist()
    r = requests.post(fashion_server["url"] + f"/v1/models/{MODEL}:predict",
                      json={"instances": x.tolist()}, headers=AUTH, timeout=30)
    assert r.status_code == 200 and r.json() == {"predictions": want}
    for shape in ([16, 1, 28, 28], [16, 28, 28], [16, 784]):
        for data in (x.ravel().tolist(), x.reshape(shape).tolist()):
            r = _v2(fashion_server, [{"name": "input", "datatype": "FP32", "shape": shape, "data": data}],
                    outputs=[{"name": "predictions"}])
            assert r.status_code == 200, r.text
            out = r.json()["outputs"]
            assert [(o["name"], o["datatype"], o["shape"]) for o in out] == [("predictions", "INT64", [16])]
            assert out[0]["data"] == want


def test_named_outputs_and_binary_data_are_honoured(fashion_server, fashion_sample, trained_fashion):
    x = fashion_sample["x_test"][:8].reshape(8, 1, 28, 28)
    want, probs = trained_fashion["predictions"][:8], trained_fashion["probabilities"][:8]
    tensor = [{"name": "input", "datatype": "FP32", "shape": [8, 1, 28, 28], "data": x.ravel().tolist()}]

    # No outputs asked for: all of them, in JSON; the response carries the request's id.
    r = _v2(fashion_server, tensor)
    body = r.json()
    assert r.headers["content-type"] == "application/json"
    assert [o["name"] for o in body["outputs"]] == ["predictions", "probabilities", "logits"]
    assert body["model_name"] == MODEL and body["model_version"] == "1"

    # Only probabilities, in JSON.
    r = requests.post(fashion_server["url"] + V2 + "/infer", headers=AUTH, timeout=30, json={
        "id": "req-7", "inputs": tensor, "outputs": [{"name": "probabilities"}]})
    body = r.json()
    assert body["id"] == "req-7" and [o["name"] for o in body["outputs"]] == ["probabilities"]
    got = np.asarray(body["outputs"][0]["data"], np.float32).reshape(body["outputs"][0]["shape"])
    np.testing.assert_allclose(got, probs, rtol=1e-4, atol=1e-5)

    # Per-output binary_data: predictions binary, probabilities JSON.
    r = _v2(fashion_server, tensor, outputs=[{"name": "predictions", "parameters": {"binary_data": True}},
                                             {"name": "probabilities", "parameters": {"binary_data": False}}])
    assert r.headers["content-type"] == "application/octet-stream"
    head, arrays = _split_binary(r)
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 64}
    assert arrays["predictions"].tolist() == want.tolist()
    np.testing.assert_allclose(arrays["probabilities"], probs, rtol=1e-4, atol=1e-5)

    # The request-wide binary_data_output, with a binary request body.
    body, headers = _binary_request([("input", "FP32", x)], parameters={"binary_data_output": True})
    r = requests.post(fashion_server["url"] + V2 + "/infer", data=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    _, arrays = _split_binary(r)
    assert set(arrays) == {"predictions", "probabilities", "logits"}
    assert arrays["predictions"].tolist() == want.tolist()

    # The same request gzip-compressed (tritonclient's request_compression_algorithm).
    r = requests.post(fashion_server["url"] + V2 + "/infer", data=gzip.compress(body),
                      headers={**headers, "Content-Encoding": "gzip"}, timeout=30)
    assert r.status_code == 200 and _split_binary(r)[1]["predictions"].tolist() == want.tolist()


def _bad_v2_cases():
    ok = {"name": "input", "datatype": "FP32", "shape": [1, 784], "data": [0.5] * 784}
    return [
        ({**ok, "data": [True] * 784}, ["FP32", "true/false"]),
        ({**ok, "data": [0.5] * 783 + [False]}, ["FP32", "true/false"]),
        ({**ok, "data": ["0.5"] * 784}, ["numbers", "strings"]),
        ({**ok, "data": [None] * 784}, ["numbers"]),
        ({**ok, "data": [[0.5] * 28] * 27 + [[0.5] * 27]}, ["row-major"]),
        ({**ok, "data": [0.5] * 10}, ["10 values", "784"]),
        ({**ok, "datatype": "INT32", "data": [0] * 784}, ["datatype FP32", "INT32"]),
        ({**ok, "datatype": "FP33"}, ["datatype must be one of"]),
        ({**ok, "shape": [1, 5, 6], "data": [0.5] * 30}, ["[1,5,6]", "[N,1,28,28]", "[N,28,28]", "[N,784]"]),
        ({**ok, "shape": "1x784"}, ["shape must be a list"]),
        ({**ok, "name": "x"}, ["unknown input 'x'", "'input'"]),
        ({k: v for k, v in ok.items() if k != "data"}, ["no data"]),
        ({**ok, "shape": [257, 784], "data": [0.5] * (257 * 784)}, ["257", "256"]),
        ({**ok, "shape": [0, 784], "data": []}, ["empty batch"]),
    ]


@pytest.mark.parametrize("tensor,words", _bad_v2_cases())
def test_bad_v2_inputs_are_400_naming_the_field(fashion_server, tensor, words):
    r = _v2(fashion_server, [tensor])
    assert r.status_code == 400, r.text
    message = r.json()["error"]
    for word in words:
        assert word in message, (word, message)


def test_bad_requests_are_4xx_with_a_message_and_the_server_lives_on(fashion_server):
    url, infer = fashion_server["url"], fashion_server["url"] + V2 + "/infer"
    ok = {"name": "input", "datatype": "FP32", "shape": [1, 784], "data": [0.5] * 784}
    json_headers = {**AUTH, "Content-Type": "application/json"}
    cases = [
        (dict(data=b"{not json", headers=json_headers), 400, "malformed JSON"),
        (dict(json=[1, 2]), 400, "JSON object"),
        (dict(json={"inputs": []}), 400, '"inputs"'),
        (dict(json={"inputs": [ok], "outputs": [{"name": "scores"}]}), 400, "unknown output 'scores'"),
        (dict(json={"inputs": [ok], "outputs": [{"name": "predictions",
                                                 "parameters": {"classification": 3}}]}), 400,
         "classification"),
        (dict(json={"inputs": [ok], "parameters": {"binary_data_output": "yes"}}), 400,
         "binary_data_output"),
        (dict(json={"inputs": [ok, ok]}), 400, "twice"),
        (dict(data=b'{"inputs": []}', headers={**AUTH, "Inference-Header-Content-Length": "99"}), 400,
         "Inference-Header-Content-Length"),
        (dict(data=b"{}", headers={**AUTH, "Content-Encoding": "br"}), 415, "Content-Encoding"),
    ]
    for kwargs, status, word in cases:
        r = requests.post(infer, timeout=10, **{"headers": AUTH, **kwargs})
        assert r.status_code == status and word in r.json()["error"], (kwargs, r.status_code, r.text)

    # Binary framing: sizes that do not add up, or data given twice.
    x = np.zeros((1, 784), np.float32)
    body, headers = _binary_request([("input", "FP32", x)])
    assert requests.post(infer, data=body, headers=headers, timeout=10).status_code == 200
    r = requests.post(infer, data=body + b"\0", headers=headers, timeout=10)
    assert r.status_code == 400 and "add up to" in r.json()["error"]
    r = requests.post(infer, data=body[:-4], headers=headers, timeout=10)
    assert r.status_code == 400 and "binary_data_size" in r.json()["error"]

    v1 = url + f"/v1/models/{MODEL}:predict"
    for payload, word in (({"instances": [[[0.0] * 5] * 5]}, "[N,28,28]"), ({"instances": []}, "empty"),
                          ({"instances": [[["a"] * 28] * 28]}, "numeric"), ({"x": 1}, "instances")):
        r = requests.post(v1, json=payload, headers=AUTH, timeout=5)
        assert r.status_code == 400 and word in r.json()["error"], (payload, r.text)
    big = b'{"instances": [' + b"0," * (5 * 1024 * 1024) + b"0]}"
    r = requests.post(v1, data=big, headers=json_headers, timeout=30)
    assert r.status_code == 413
    r = requests.get(url + "/v1/models/other", headers=AUTH, timeout=5)
    assert r.status_code == 404

    assert fashion_server["proc"].poll() is None
    assert requests.post(infer, json={"inputs": [ok]}, headers=AUTH, timeout=5).status_code == 200
    # Each refusal is one log line, with its status and reason; a client's mistake is no traceback.
    log = fashion_server["log"].read_text()
    assert "Traceback" not in log
    assert f"400 POST {V2}/infer: unknown output 'scores'" in log
    assert "404 GET /v1/models/other: " in log


def test_auth(fashion_server):
    url = f"{fashion_server['url']}/v1/models/{MODEL}:predict"
    body = {"instances": np.zeros((1, 28, 28)).tolist()}
    r = requests.post(url, json=body, timeout=5)
    assert r.status_code == 401 and "error" in r.json() and r.headers["www-authenticate"] == "Bearer"
    r = requests.post(url, json=body, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 403 and "error" in r.json()
    for path in ("/v2/health/ready", V2, V2 + "/ready", "/v2"):
        assert requests.get(fashion_server["url"] + path, timeout=5).status_code == 401, path
    assert TOKEN not in fashion_server["log"].read_text()


def test_listens_on_loopback_only(fashion_server):
    port = fashion_server["port"]
    listeners = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        with open(name) as table:
            next(table)
            for line in table:
                fields = line.split()
                addr, lport = fields[1].rsplit(":", 1)
                if int(lport, 16) == port and fields[3] == "0A":  # LISTEN
                    listeners.append(addr)
    if not listeners:
        pytest.skip("no /proc/net/tcp view of the listener")
    assert listeners == ["0100007F"], listeners


def test_model_pt_without_its_export_serves_the_same_tensors(tmp_path, trained_fashion, fashion_sample):
    """A model dir with only model.pt (no current model.onnx) is exported in memory at start:
    the same metadata and logits as the published export."""
    import shutil

    from minikf.workload.served_model import open_model

    bare = tmp_path / "model"
    bare.mkdir()
    for name in ("model.pt", "model.json"):
        shutil.copy(trained_fashion["dir"] / name, bare / name)
    fresh, published = open_model(bare), open_model(trained_fashion["dir"])
    assert fresh.metadata() == published.metadata()
    x = fashion_sample["x_test"][:5].reshape(5, 1, 28, 28)
    np.testing.assert_allclose(fresh.runtime.run({"input": x})[0], published.runtime.run({"input": x})[0],
                               rtol=1e-4, atol=1e-5)
