"""One wait for every "until it is ready": ready, exited first, or out of time."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from minikf.runtime.errors import NotReady
from minikf.runtime.ports import free_port
from minikf.runtime.waiting import Retry, http_probe, wait_for_port, wait_until


def test_returns_the_probes_value_once_ready():
    calls = []

    def probe():
        calls.append(1)
        if len(calls) < 3:
            raise Retry("warming up")
        return {"ready": True}

    assert wait_until(probe, what="thing", timeout_s=5, interval_s=0.01) == {"ready": True}
    assert len(calls) == 3


def test_a_process_that_exits_first_ends_the_wait_at_once():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    started = time.monotonic()
    with pytest.raises(NotReady, match=r"^server exited 4 before it was ready; see x.log$"):
        wait_until(lambda: None, what="server", timeout_s=30, proc=proc,
                   detail=lambda: "; see x.log")
    assert time.monotonic() - started < 10


def test_out_of_time_says_what_the_probe_saw_last():
    def probe():
        raise Retry("HTTP 503")

    with pytest.raises(NotReady, match=r"^api not ready after 0.2s \(HTTP 503\)$"):
        wait_until(probe, what="api", timeout_s=0.2, interval_s=0.01)


def test_http_probe_against_a_real_server():
    state = {"ready": False}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if state["ready"] else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    probe = http_probe(lambda: requests.get(url, timeout=2), lambda r: r.status_code == 200)
    try:
        with pytest.raises(NotReady, match=r"\(HTTP 503\)"):
            wait_until(probe, what="server", timeout_s=0.3)
        threading.Timer(0.2, lambda: state.update(ready=True)).start()
        assert wait_until(probe, what="server", timeout_s=10) is True
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(NotReady, match=r"\(ConnectionError\)"):
        wait_until(probe, what="server", timeout_s=0.3)


def test_wait_for_port_sees_a_listener():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", (
        "import socket, time; time.sleep(0.3); s = socket.socket(); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(30)")])
    try:
        wait_for_port(port, proc, timeout_s=20)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(NotReady, match=rf"service on 127.0.0.1:{port} exited -9 before it was ready"):
        wait_for_port(port, proc, timeout_s=5)
