import gzip
import hashlib
import http.server
import shutil
import socket
import struct
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from minikf.workload import fashion_data as fd
from tests.paths import DATA

# The real Fashion-MNIST files bundled in the project (see data/README.md for the license).
SHARED = DATA
SAMPLE_DIR = SHARED / "fashion-mnist-sample"
CANON_DIR = SHARED / "fashion-mnist-canonical"

pytestmark = pytest.mark.skipif(not SAMPLE_DIR.is_dir(), reason="shared Fashion-MNIST sample data missing")


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from `root`, honouring single 'bytes=N-[M]' Range requests."""

    def __init__(self, *args, root: Path, log: list, **kwargs):
        self.root = root
        self.log = log
        super().__init__(*args, **kwargs)

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        self.log.append((self.path, rng))
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if rng and rng.startswith("bytes="):
            start_s, _, end_s = rng[6:].partition("-")
            start = int(start_s)
            end = int(end_s) if end_s else len(data) - 1
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(body)


class Server:
    def __init__(self, root: Path):
        self.log: list = []
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(RangeHandler, root=root, log=self.log)
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve():
    servers = []

    def _serve(root: Path) -> Server:
        s = Server(root)
        servers.append(s)
        return s

    yield _serve
    for s in servers:
        s.close()


@pytest.fixture
def closed_port_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    return f"http://127.0.0.1:{port}/"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_constants():
    assert set(fd.FILES) == set(fd.SAMPLE_FILES)
    assert len(fd.FILES) == 4
    assert fd.FILES["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert fd.DEFAULT_MIRRORS[0].startswith("https://")


def test_download_from_local_server(serve, tmp_path):
    srv = serve(SAMPLE_DIR)
    got = fd.download(tmp_path / "raw", [srv.url], fd.SAMPLE_FILES, timeout=5)
    assert got == fd.SAMPLE_FILES
    for name, digest in fd.SAMPLE_FILES.items():
        assert md5(tmp_path / "raw" / name) == digest
        assert not (tmp_path / "raw" / (name + ".part")).exists()
    # second call skips: no new requests
    n = len(srv.log)
    assert fd.download(tmp_path / "raw", [srv.url], fd.SAMPLE_FILES, timeout=5) == fd.SAMPLE_FILES
    assert len(srv.log) == n


def test_unreachable_first_mirror_falls_through(serve, tmp_path, closed_port_url):
    srv = serve(SAMPLE_DIR)
    got = fd.download(tmp_path, [closed_port_url, srv.url], fd.SAMPLE_FILES, timeout=5)
    assert got == fd.SAMPLE_FILES
    assert len(srv.log) == 4


def test_all_mirrors_unreachable_lists_urls(tmp_path, closed_port_url, serve):
    empty = tmp_path / "empty"
    empty.mkdir()
    srv404 = serve(empty)
    with pytest.raises(fd.DownloadError) as ei:
        fd.download(tmp_path / "raw", [closed_port_url, srv404.url], fd.SAMPLE_FILES, timeout=5)
    msg = str(ei.value)
    name = "train-images-idx3-ubyte.gz"
    assert closed_port_url + name in msg
    assert srv404.url + name in msg
    assert "404" in msg


def test_corrupt_file_raises_with_checksums(serve, tmp_path):
    root = tmp_path / "srv"
    shutil.copytree(SAMPLE_DIR, root)
    name = "train-labels-idx1-ubyte.gz"
    (root / name).chmod(0o644)
    bad = bytearray((root / name).read_bytes())
    bad[-5] ^= 0xFF
    (root / name).write_bytes(bytes(bad))
    actual = hashlib.md5(bytes(bad)).hexdigest()
    srv = serve(root)
    with pytest.raises(fd.DownloadError) as ei:
        fd.download(tmp_path / "raw", [srv.url], {name: fd.SAMPLE_FILES[name]}, retries=1, timeout=5)
    msg = str(ei.value)
    assert name in msg and fd.SAMPLE_FILES[name] in msg and actual in msg
    assert not (tmp_path / "raw" / name).exists()
    assert sum(1 for p, _ in srv.log if p.endswith(name)) == 2  # 1 try + 1 retry


def test_resume_partial_with_range(serve, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    data = (SAMPLE_DIR / name).read_bytes()
    raw = tmp_path / "raw"
    raw.mkdir()
    half = len(data) // 2
    (raw / (name + ".part")).write_bytes(data[:half])
    srv = serve(SAMPLE_DIR)
    got = fd.download(raw, [srv.url], {name: fd.SAMPLE_FILES[name]}, timeout=5)
    assert got == {name: fd.SAMPLE_FILES[name]}
    assert (raw / name).read_bytes() == data
    assert srv.log == [("/" + name, f"bytes={half}-")]


def test_range_ignored_restarts(tmp_path, serve):
    """A server answering 200 to a Range request must not corrupt the file."""

    class NoRange(RangeHandler):
        def do_GET(self):
            rng = self.headers.get("Range")
            if rng:
                del self.headers["Range"]
            RangeHandler.do_GET(self)
            self.log[-1] = (self.path, rng)

    name = "t10k-labels-idx1-ubyte.gz"
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / (name + ".part")).write_bytes(b"garbage-prefix")
    log: list = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(NoRange, root=SAMPLE_DIR, log=log))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        got = fd.download(raw, [url], {name: fd.SAMPLE_FILES[name]}, timeout=5)
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)
    assert got == {name: fd.SAMPLE_FILES[name]}
    assert log[0][1] == "bytes=14-"


def test_local_directory_and_file_url_mirror(tmp_path):
    sub = {k: fd.SAMPLE_FILES[k] for k in ["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]}
    assert fd.download(tmp_path / "a", [str(SAMPLE_DIR)], sub) == sub
    assert fd.download(tmp_path / "b", [SAMPLE_DIR.as_uri()], sub) == sub


@pytest.mark.skipif(not CANON_DIR.is_dir(), reason="canonical label files missing")
def test_canonical_labels_verify(serve, tmp_path):
    srv = serve(CANON_DIR)
    sub = {k: fd.FILES[k] for k in ["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]}
    assert fd.download(tmp_path, [srv.url], sub, timeout=5) == sub
    assert fd.load_idx(tmp_path / "train-labels-idx1-ubyte.gz").shape == (60000,)
    assert fd.load_idx(tmp_path / "t10k-labels-idx1-ubyte.gz").shape == (10000,)


def test_load_idx_sample_shapes():
    x = fd.load_idx(SAMPLE_DIR / "train-images-idx3-ubyte.gz")
    y = fd.load_idx(SAMPLE_DIR / "train-labels-idx1-ubyte.gz")
    assert x.shape == (700, 28, 28) and x.dtype == np.uint8
    assert y.shape == (700,)


def test_load_idx_truncated(tmp_path):
    raw = gzip.decompress((SAMPLE_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    p = tmp_path / "truncated-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(raw[: len(raw) - 100]))
    with pytest.raises(fd.IdxError, match="truncated-images-idx3-ubyte.gz.*payload"):
        fd.load_idx(p)


def test_load_idx_truncated_gzip_stream(tmp_path):
    data = (SAMPLE_DIR / "t10k-images-idx3-ubyte.gz").read_bytes()
    p = tmp_path / "cut.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(fd.IdxError, match="cut.gz"):
        fd.load_idx(p)


def test_load_idx_garbage(tmp_path):
    p = tmp_path / "garbage.gz"
    p.write_bytes(b"this is not gzip at all")
    with pytest.raises(fd.IdxError, match="garbage.gz"):
        fd.load_idx(p)
    q = tmp_path / "badmagic.gz"
    q.write_bytes(gzip.compress(struct.pack(">ii", 1234, 0)))
    with pytest.raises(fd.IdxError, match="badmagic.gz.*magic"):
        fd.load_idx(q)
    assert issubclass(fd.IdxError, ValueError)


def test_preprocess(tmp_path):
    out = tmp_path / "out"
    counts = fd.preprocess(SAMPLE_DIR, out)
    assert counts == {"train": 700, "test": 150}
    for split, n in (("train", 700), ("test", 150)):
        with np.load(out / f"{split}.npz") as z:
            x, y = z["x"], z["y"]
        assert x.shape == (n, 28, 28) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert y.min() >= 0 and y.max() <= 9


def test_preprocess_count_mismatch(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE_DIR, raw)
    p = raw / "t10k-labels-idx1-ubyte.gz"
    p.chmod(0o644)
    labels = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(struct.pack(">ii", 2049, 149) + labels[8:-1]))
    with pytest.raises(fd.IdxError, match="count"):
        fd.preprocess(raw, tmp_path / "out")


def test_progress_reports_bytes_up_to_the_total(serve, tmp_path):
    srv = serve(SAMPLE_DIR)
    seen: dict[str, tuple[int, int | None]] = {}
    fd.download(tmp_path / "raw", [srv.url], fd.SAMPLE_FILES, timeout=5,
                progress=lambda name, done, total: seen.__setitem__(name, (done, total)))
    for name in fd.SAMPLE_FILES:
        size = (SAMPLE_DIR / name).stat().st_size
        assert seen[name] == (size, size)


@pytest.fixture
def mirror():
    from tests.mirrors import Mirror

    made = []

    def make(how: str):
        made.append(Mirror(how))
        return made[-1]

    yield make
    for m in made:
        m.close()


def test_a_corrupt_first_mirror_moves_on_to_the_next(mirror, tmp_path):
    corrupt, good = mirror("corrupt"), mirror("good")
    skipped: list[str] = []
    got = fd.download(tmp_path, [corrupt.url, good.url], fd.SAMPLE_FILES, timeout=5, skipped=skipped)
    assert got == fd.SAMPLE_FILES
    assert len(corrupt.requests) == 4 and len(good.requests) == 4  # no retry at the corrupt one
    for name, line in zip(fd.SAMPLE_FILES, skipped, strict=True):
        actual = hashlib.md5(corrupt.body(name)).hexdigest()
        assert line == f"{corrupt.url}{name}: md5 {actual}, expected {fd.SAMPLE_FILES[name]}"


def test_when_every_mirror_fails_one_line_names_each_and_what_it_gave(mirror, tmp_path,
                                                                       closed_port_url):
    corrupt, truncated, slow = mirror("corrupt"), mirror("truncated"), mirror("slow")
    name = "train-images-idx3-ubyte.gz"
    urls = [corrupt.url, truncated.url, slow.url, closed_port_url]
    started = time.monotonic()
    with pytest.raises(fd.DownloadError) as info:
        fd.download(tmp_path, urls, {name: fd.SAMPLE_FILES[name]}, retries=1, timeout=0.5)
    message = str(info.value)
    assert time.monotonic() - started < 10  # the slow mirror is given 0.5 s of silence per try
    assert "\n" not in message
    assert message.startswith(f"could not download {name} from any of 4 mirror(s), each tried "
                              "2 time(s): ")
    actual = hashlib.md5(corrupt.body(name)).hexdigest()
    assert f"{corrupt.url}{name}: md5 {actual}, expected {fd.SAMPLE_FILES[name]}" in message
    assert f"{truncated.url}{name}: connection closed " in message
    assert f"{slow.url}{name}: timed out (no data for 0.5s)" in message
    assert f"{closed_port_url}{name}: connection refused (2 times)" in message


def test_a_transfer_cut_short_is_resumed_from_the_next_mirror(mirror, tmp_path):
    truncated, good = mirror("truncated"), mirror("good")
    name = "train-images-idx3-ubyte.gz"
    skipped: list[str] = []
    assert fd.download(tmp_path, [truncated.url, good.url], {name: fd.SAMPLE_FILES[name]},
                       timeout=5, skipped=skipped) == {name: fd.SAMPLE_FILES[name]}
    (_, rng), = good.requests
    kept = int(rng.removeprefix("bytes=").rstrip("-"))
    assert kept > 0 and skipped == [f"{truncated.url}{name}: connection closed "
                                    f"{(SAMPLE_DIR / name).stat().st_size // 2 + 1} bytes before "
                                    f"the end ({kept} bytes kept to resume)"]
