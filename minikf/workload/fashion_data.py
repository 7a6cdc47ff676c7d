"""Fashion-MNIST download (mirrors, resume, md5 checks), IDX parsing and preprocessing."""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import requests

FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

SAMPLE_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "118ac3b74798f38e13dbac69d52da5b0",
    "train-labels-idx1-ubyte.gz": "820a590b65ff12ea37341347cab52c0b",
    "t10k-images-idx3-ubyte.gz": "1381d9e729620a5c92cf49db8455c91d",
    "t10k-labels-idx1-ubyte.gz": "3efff7e702e23900d8b1c9fa5af51a9e",
}

DEFAULT_MIRRORS: list[str] = [
    "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
_CHUNK = 1 << 16


class DownloadError(Exception):
    """Raised when a file cannot be fetched or fails verification."""


class IdxError(ValueError):
    """Raised when an IDX file is malformed."""


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _local_dir(mirror: str) -> Path | None:
    """Return a directory path if `mirror` is a file:// URL or a local directory, else None."""
    parsed = urlparse(mirror)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    return Path(mirror)


def _join(mirror: str, name: str) -> str:
    return mirror.rstrip("/") + "/" + name


Progress = Callable[[str, int, "int | None"], None]
"""progress(file name, bytes so far, total bytes or None)."""


def _fetch_http(url: str, part: Path, timeout: float, progress: Progress | None = None) -> int:
    """Download `url` into `part`, resuming from its current size with an HTTP Range request;
    returns the byte it resumed from (0: from the start)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if offset and r.status_code == 416:
            # Requested range not satisfiable: the partial file is already complete
            # (or bogus); let the md5 check decide.
            return offset
        if r.status_code == 206 and offset:
            mode = "ab"
        elif r.status_code == 200:
            mode = "wb"  # server ignored Range (or no Range sent): restart from scratch
        else:
            raise requests.HTTPError(f"HTTP {r.status_code} {r.reason}", response=r)
        done = offset if mode == "ab" else 0
        length = r.headers.get("Content-Length")
        total = done + int(length) if length and length.isdigit() else None
        name = url.rsplit("/", 1)[-1]
        with open(part, mode) as f:
            for block in r.iter_content(_CHUNK):
                if block:
                    f.write(block)
                    done += len(block)
                    if progress:
                        progress(name, done, total)
        return offset if mode == "ab" else 0


def _reason(exc: requests.RequestException, timeout: float) -> str:
    """A failed request in a few words: timed out, connection refused, HTTP 404, cut short."""
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return f"timed out (no data for {timeout:g}s)"
    if isinstance(exc, requests.HTTPError):
        return text
    cut = re.search(r"IncompleteRead\(\d+ bytes read, (\d+) more expected\)", text)
    if cut:
        return f"connection closed {cut.group(1)} bytes before the end"
    errno_text = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno_text:
        return errno_text.group(1).strip().lower()
    return f"{type(exc).__name__}: {text[:200]}"


def _try_mirror(name: str, dest: Path, mirror: str, expected: str, timeout: float,
                progress: Progress | None = None) -> str | None:
    """Fetch `name` from one mirror and verify it: None when dest/name is in place, else what
    this mirror gave ("URL: md5 X, expected Y"). A transfer cut short is kept in NAME.part
    for the next mirror to resume; a file with the wrong checksum is deleted."""
    part = dest / (name + ".part")
    local = _local_dir(mirror)
    where = str(local / name) if local is not None else _join(mirror, name)
    resumed = 0
    if local is not None:
        if not (local / name).is_file():
            return f"{where}: no such file"
        shutil.copyfile(local / name, part)  # a problem writing dest is not the mirror's
    else:
        before = part.stat().st_size if part.exists() else 0
        try:
            resumed = _fetch_http(where, part, timeout, progress)
        except requests.RequestException as exc:
            kept = part.stat().st_size if part.exists() else 0
            said = f" ({kept} bytes kept to resume)" if kept > before else ""
            return f"{where}: {_reason(exc, timeout)}{said}"
    actual = md5sum(part)
    if actual != expected:
        part.unlink()
        after = f" (resumed at byte {resumed} of an earlier transfer)" if resumed else ""
        return f"{where}: md5 {actual}, expected {expected}{after}"
    os.replace(part, dest / name)
    return None


def _summary(name: str, mirrors: list[str], rounds: int, failures: list[str]) -> str:
    """One line: every mirror tried and what each gave, a repeated answer once with a count."""
    counts: dict[str, int] = {}
    for failure in failures:
        counts[failure] = counts.get(failure, 0) + 1
    said = "; ".join(f"{text} ({n} times)" if n > 1 else text for text, n in counts.items())
    return (f"could not download {name} from any of {len(mirrors)} mirror(s), each tried "
            f"{rounds} time(s): {said}")


def download(
    dest: Path,
    mirrors: list[str],
    checksums: dict[str, str],
    retries: int = 2,
    timeout: float = 30,
    progress: Progress | None = None,
    skipped: list[str] | None = None,
) -> dict[str, str]:
    """Fetch every file in `checksums` into `dest`, verifying md5. Returns {file: md5}.

    Mirrors are tried in order for each file; one that fails (unreachable, cut short, the wrong
    checksum) is passed over for the next, and the whole list is tried `retries` more times.
    What each passed-over mirror gave is appended to `skipped` when the file came from a later
    one; when none gave it, DownloadError names each mirror and what it gave."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if not mirrors:
        raise DownloadError("no mirrors given")
    result: dict[str, str] = {}
    for name, expected in checksums.items():
        target = dest / name
        if target.exists():
            if md5sum(target) == expected:
                result[name] = expected
                continue
            target.unlink()
        failures = _fetch_verified(name, dest, mirrors, expected, retries, timeout, progress)
        if not target.exists():
            raise DownloadError(_summary(name, mirrors, retries + 1, failures))
        if skipped is not None:
            skipped.extend(failures)
        result[name] = expected
    return result


def _fetch_verified(name: str, dest: Path, mirrors: list[str], expected: str, retries: int,
                    timeout: float, progress: Progress | None) -> list[str]:
    """Rounds over the mirrors until one gives the file; returns what the others gave."""
    failures: list[str] = []
    for attempt in range(retries + 1):
        for mirror in mirrors:
            problem = _try_mirror(name, dest, mirror, expected, timeout, progress)
            if problem is None:
                return failures
            failures.append(problem)
        if attempt < retries:
            time.sleep(min(0.5 * (attempt + 1), 2.0))
    return failures


def load_idx(path: Path) -> np.ndarray:
    """Read a gzip-compressed IDX file (images magic 2051, labels magic 2049)."""
    path = Path(path)
    name = path.name
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise IdxError(f"{name}: file not found ({path})") from None
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"{name}: not a valid gzip file ({e})") from None
    if len(data) < 8:
        raise IdxError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    magic, count = struct.unpack(">ii", data[:8])
    if magic == IMAGE_MAGIC:
        header = 16
        if len(data) < header:
            raise IdxError(f"{name}: truncated image header ({len(data)} bytes)")
        rows, cols = struct.unpack(">ii", data[8:16])
        shape: tuple[int, ...] = (count, rows, cols)
    elif magic == LABEL_MAGIC:
        header = 8
        shape = (count,)
    else:
        raise IdxError(
            f"{name}: bad magic number {magic} (expected {IMAGE_MAGIC} for images "
            f"or {LABEL_MAGIC} for labels)"
        )
    if any(d <= 0 for d in shape[1:]) or count < 0:
        raise IdxError(f"{name}: invalid dimensions {shape}")
    expected = int(np.prod(shape, dtype=np.int64))
    payload = len(data) - header
    if payload != expected:
        raise IdxError(
            f"{name}: payload is {payload} bytes but header dimensions {shape} "
            f"require {expected} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _load_split(raw_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = load_idx(raw_dir / f"{prefix}-images-idx3-ubyte.gz")
    labels = load_idx(raw_dir / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IdxError(f"{prefix}-images-idx3-ubyte.gz: expected (N, 28, 28) images, got {images.shape}")
    if labels.ndim != 1:
        raise IdxError(f"{prefix}-labels-idx1-ubyte.gz: expected 1-D labels, got {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise IdxError(
            f"{prefix}: image count {images.shape[0]} does not match label count {labels.shape[0]}"
        )
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def preprocess(raw_dir: Path, out_dir: Path) -> dict:
    """Convert raw IDX files to train.npz / test.npz (x float32 in [0,1], y int64)."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    x_train, y_train = _load_split(raw_dir, "train")
    x_test, y_test = _load_split(raw_dir, "t10k")
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "train.npz", x=x_train, y=y_train)
    np.savez(out_dir / "test.npz", x=x_test, y=y_test)
    return {"train": int(x_train.shape[0]), "test": int(x_test.shape[0])}
