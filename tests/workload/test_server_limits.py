"""The model server under abuse and overload: read timeouts, header size, a bounded queue
(503 + Retry-After), deadlines (504); each refusal one log line, never a traceback."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
import requests

from tests.workload.model_servers import AUTH, running_server

INFER = "/v2/models/fashion-mnist/infer"


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory, trained_fashion):
    log = tmp_path_factory.mktemp("strict-server") / "server.log"
    with running_server(trained_fashion["dir"], log, "--header-timeout", "1", "--body-timeout", "1",
                        "--max-header-bytes", "4096", "--max-queue", "2") as server:
        yield server


def _raw(server, data: bytes, wait_s: float = 8.0) -> tuple[bytes, float]:
    """Send `data` on a fresh connection and read until the server closes it: (reply, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=wait_s) as conn:
        if data:
            conn.sendall(data)
        reply = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            reply += chunk
    return reply, time.monotonic() - started


def test_slow_or_idle_clients_are_timed_out(strict_server):
    token = AUTH["Authorization"].encode()
    reply, took = _raw(strict_server, b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\n")
    assert reply.startswith(b"HTTP/1.1 408 ") and b"request headers not complete within 1 s" in reply
    assert took < 6

    reply, took = _raw(strict_server, b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                       b"Authorization: " + token + b"\r\nContent-Length: 500\r\n\r\n{\"inputs\"")
    assert reply.startswith(b"HTTP/1.1 408 ") and b"request body not complete within 1 s" in reply
    assert took < 6

    reply, took = _raw(strict_server, b"")  # a connection that never sends a byte
    assert reply == b"" and took < 6

    reply, _ = _raw(strict_server, b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ") and b"over 4096 bytes" in reply

    # A request that is merely split in pieces, within the limits, is served.
    with socket.create_connection(("127.0.0.1", strict_server["port"]), timeout=5) as conn:
        conn.sendall(b"GET /v2/models/fashion-mnist/ready HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        conn.sendall(b"Authorization: " + token + b"\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")


def _binary_body(x: np.ndarray, parameters: dict | None = None) -> tuple[bytes, dict]:
    head = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                        "parameters": {"binary_data_size": x.nbytes}}],
            "outputs": [{"name": "predictions"}]}
    if parameters:
        head["parameters"] = parameters
    header = json.dumps(head).encode()
    return header + x.tobytes(), {**AUTH, "Inference-Header-Content-Length": str(len(header))}


def test_a_full_queue_is_refused_with_retry_after(strict_server, fashion_sample, trained_fashion):
    """12 clients at once, each with a batch of 256 real images, against a queue of 2: some are
    refused at once with 503 + Retry-After, every other one is answered in full and correctly."""
    x = np.resize(fashion_sample["x_test"], (256, 28, 28)).astype(np.float32)
    want = np.resize(trained_fashion["predictions"], 256).tolist()
    body, headers = _binary_body(x)
    refused = []
    for _attempt in range(3):  # a burst where no two requests overlap is possible, if unlikely
        barrier, results = threading.Barrier(12), []

        def client(barrier=barrier, results=results):
            barrier.wait()
            results.append(requests.post(strict_server["url"] + INFER, data=body, headers=headers,
                                         timeout=60))

        threads = [threading.Thread(target=client) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {r.status_code for r in results} <= {200, 503}, [r.text for r in results]
        for r in results:
            if r.status_code == 200:
                assert json.loads(r.content)["outputs"][0]["data"] == want
        refused = [r for r in results if r.status_code == 503]
        if refused:
            break
    assert refused, "12 simultaneous requests never filled a queue of 2"
    assert refused[0].headers["retry-after"] == "1"
    assert "limit 2" in refused[0].json()["error"]
    log = strict_server["log"].read_text()
    assert log.count("503: queue full (limit 2): refusing requests") == 1, log[-2000:]


def test_a_request_past_its_deadline_is_not_run(strict_server):
    """The V2 request parameter `timeout` (microseconds) tightens the server's deadline."""
    body, headers = _binary_body(np.zeros((1, 1, 28, 28), np.float32), {"timeout": 1})
    r = requests.post(strict_server["url"] + INFER, data=body, headers=headers, timeout=10)
    assert r.status_code == 504 and "deadline" in r.json()["error"]
    body, headers = _binary_body(np.zeros((1, 1, 28, 28), np.float32), {"timeout": 5_000_000})
    assert requests.post(strict_server["url"] + INFER, data=body, headers=headers, timeout=10).ok


def test_refusals_are_logged_one_line_each(strict_server):
    test_slow_or_idle_clients_are_timed_out(strict_server)
    test_a_request_past_its_deadline_is_not_run(strict_server)
    log = strict_server["log"].read_text()
    assert "Traceback" not in log
    for line in ("408 from 127.0.0.1:", "request body not complete within 1 s",
                 "431 from 127.0.0.1:", "504 POST /v2/models/fashion-mnist/infer: request waited"):
        assert line in log, line
    assert strict_server["proc"].poll() is None
