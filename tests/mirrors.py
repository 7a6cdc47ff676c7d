"""Mirrors of the Fashion-MNIST sample for download tests: real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
from functools import partial

from tests.paths import SAMPLE

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class Mirror:
    """A real HTTP server on 127.0.0.1 serving the sample: good, corrupt (one byte flipped in
    every file), truncated (half the body, then the connection closes) or slow (answers after
    longer than the client waits)."""

    def __init__(self, how: str) -> None:
        self.how, self.requests, self.release = how, [], threading.Event()
        handler = partial(_MirrorHandler, mirror=self)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def body(self, name: str) -> bytes:
        data = (SAMPLE / name).read_bytes()
        if self.how == "corrupt":
            data = data[:-9] + bytes([data[-9] ^ 0xFF]) + data[-8:]
        return data

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *args, mirror: Mirror, **kwargs) -> None:
        self.mirror = mirror
        super().__init__(*args, **kwargs)

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a slow mirror's, on purpose)

    def _answer(self) -> None:
        name = self.path.lstrip("/")
        self.mirror.requests.append((name, self.headers.get("Range")))
        if name not in NAMES:
            self.send_error(404)
            return
        if self.mirror.how == "slow":
            self.mirror.release.wait(30)
        data = self.mirror.body(name)
        start = int(self.headers["Range"][6:].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if self.mirror.how == "truncated":
            self.wfile.write(data[start:start + (len(data) - start) // 2])
            self.close_connection = True
            return
        self.wfile.write(data[start:])
