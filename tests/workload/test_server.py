"""The real KServe model server as a subprocess: protocols, auth, limits, binding."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
import torch

from minikf.runtime.ports import free_port
from minikf.workload.model import FashionCNN, save_model

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    torch.manual_seed(0)
    net = FashionCNN().eval()
    model_dir = save_model(net, tmp_path_factory.mktemp("model"))
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "minikf.workload.server", "--model-dir", str(model_dir),
             "--port", str(port)],
            env={**os.environ, "MINIKF_SERVE_TOKEN": TOKEN},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "server not ready in 30s"
            try:
                if requests.get(f"{url}/v2/health/ready", headers=AUTH, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        yield {"url": url, "net": net, "proc": proc, "port": port, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _images(n=8):
    return np.random.default_rng(1).random((n, 28, 28), dtype=np.float32)


def _v2(url, data, shape, datatype="FP32", headers=AUTH):
    body = {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}
    return requests.post(f"{url}/v2/models/fashion-mnist/infer", json=body, headers=headers, timeout=10)


def test_v1_and_v2_match_in_process_model(server):
    x = _images()
    with torch.no_grad():
        want = server["net"](torch.from_numpy(x)).argmax(1).tolist()
    r1 = requests.post(f"{server['url']}/v1/models/fashion-mnist:predict",
                       json={"instances": x.tolist()}, headers=AUTH, timeout=10)
    assert r1.status_code == 200, r1.text
    assert r1.json()["predictions"] == want
    r2 = _v2(server["url"], x.ravel().tolist(), [8, 28, 28])
    assert r2.status_code == 200, r2.text
    out = r2.json()["outputs"][0]
    assert (out["name"], out["datatype"], out["shape"]) == ("predictions", "INT64", [8])
    assert out["data"] == want
    r3 = _v2(server["url"], x.ravel().tolist(), [8, 784])
    assert r3.json()["outputs"][0]["data"] == want


def test_health_and_metadata(server):
    url = server["url"]
    assert requests.get(f"{url}/v2/health/live", headers=AUTH, timeout=5).status_code == 200
    assert requests.get(f"{url}/v2/health/ready", headers=AUTH, timeout=5).status_code == 200
    meta = requests.get(f"{url}/v2/models/fashion-mnist", headers=AUTH, timeout=5)
    assert meta.status_code == 200 and meta.json()["name"] == "fashion-mnist"


def test_auth(server):
    url = f"{server['url']}/v1/models/fashion-mnist:predict"
    body = {"instances": _images(1).tolist()}
    r = requests.post(url, json=body, timeout=5)
    assert r.status_code == 401 and "error" in r.json()
    r = requests.post(url, json=body, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 403 and "error" in r.json()
    assert requests.get(f"{server['url']}/v2/health/ready", timeout=5).status_code == 401
    assert TOKEN not in server["log"].read_text()


def test_bad_requests_are_4xx_and_server_survives(server):
    url = server["url"]
    r = requests.post(f"{url}/v1/models/fashion-mnist:predict", data=b"{not json",
                      headers={**AUTH, "Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 400, r.text
    r = _v2(url, [0.0] * 30, [1, 5, 6])
    assert r.status_code == 400 and "shape" in r.json()["error"]
    r = requests.post(f"{url}/v1/models/fashion-mnist:predict",
                      json={"instances": [[[0.0] * 5] * 5]}, headers=AUTH, timeout=5)
    assert r.status_code == 400 and "shape" in r.json()["error"]
    r = _v2(url, [0] * 784, [1, 784], datatype="INT32")
    assert r.status_code == 400 and "FP32" in r.json()["error"]
    r = requests.post(f"{url}/v1/models/fashion-mnist:predict",
                      json={"instances": [[["a"] * 28] * 28]}, headers=AUTH, timeout=5)
    assert r.status_code == 400
    r = requests.post(f"{url}/v1/models/fashion-mnist:predict", json={"instances": []},
                      headers=AUTH, timeout=5)
    assert r.status_code == 400 and "empty" in r.json()["error"]
    r = _v2(url, [0.0] * (257 * 784), [257, 784])
    assert r.status_code == 400 and "256" in r.json()["error"]
    big = b'{"instances": [' + b"0," * (5 * 1024 * 1024) + b"0]}"
    r = requests.post(f"{url}/v1/models/fashion-mnist:predict", data=big,
                      headers={**AUTH, "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 413
    assert server["proc"].poll() is None
    r = requests.post(f"{url}/v1/models/fashion-mnist:predict",
                      json={"instances": _images(1).tolist()}, headers=AUTH, timeout=5)
    assert r.status_code == 200


def test_listens_on_loopback_only(server):
    port = server["port"]
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


def test_kserve_path_checks_requests_like_the_fast_path(tmp_path):
    """Requests the fast path hands on to KServe (e.g. V2 with binary data or parameters) reach
    FashionModel.predict: the same checks, as KServe's InvalidInput (400)."""
    import numpy as np
    import torch
    from kserve import InferInput, InferRequest
    from kserve.errors import InvalidInput

    from minikf.workload.model import FashionCNN, save_model
    from minikf.workload.server import FashionModel

    torch.manual_seed(0)
    model = FashionModel("fashion-mnist", save_model(FashionCNN().eval(), tmp_path / "model"))
    model.load()
    assert len(model.predict({"instances": np.zeros((2, 28, 28)).tolist()})["predictions"]) == 2

    def v2(shape, datatype, dtype):
        tensor = InferInput("x", shape, datatype)
        tensor.set_data_from_numpy(np.zeros(shape, dtype=dtype))
        return InferRequest(model_name="fashion-mnist", infer_inputs=[tensor])

    assert len(model.predict(v2([3, 784], "FP32", np.float32)).outputs[0].data) == 3
    bad = [({"instances": []}, "empty"), ({"instances": [[1, 2]]}, "shape"),
           (v2([1, 784], "INT32", np.int32), "FP32"), (v2([1, 28, 27], "FP32", np.float32), "shape")]
    for payload, word in bad:
        with pytest.raises(InvalidInput, match=word):
            model.predict(payload)
