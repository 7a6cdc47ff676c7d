"""Fashion-MNIST download (mirrors, resume, md5 checks), IDX parsing and preprocessing."""
from __future__ import annotations

import gzip
import hashlib
import os
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


def _fetch_http(url: str, part: Path, timeout: float, progress: Progress | None = None) -> None:
    """Download `url` into `part`, resuming from its current size with an HTTP Range request."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if offset and r.status_code == 416:
            # Requested range not satisfiable: the partial file is already complete
            # (or bogus); let the md5 check decide.
            return
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


def _fetch_one(name: str, dest: Path, mirrors: list[str], timeout: float,
               progress: Progress | None = None) -> list[str]:
    """Try each mirror in order; on success move the data into dest/name and return [].

    Returns a list of 'url: reason' strings if every mirror failed.
    """
    target = dest / name
    part = dest / (name + ".part")
    failures: list[str] = []
    for mirror in mirrors:
        local = _local_dir(mirror)
        if local is not None:
            src = local / name
            try:
                shutil.copyfile(src, part)
            except OSError as e:
                failures.append(f"{src}: {e.strerror or e}")
                continue
        else:
            url = _join(mirror, name)
            try:
                _fetch_http(url, part, timeout, progress)
            except requests.RequestException as e:
                failures.append(f"{url}: {type(e).__name__}: {e}")
                continue
        os.replace(part, target)
        return []
    return failures


def download(
    dest: Path,
    mirrors: list[str],
    checksums: dict[str, str],
    retries: int = 2,
    timeout: float = 30,
    progress: Progress | None = None,
) -> dict[str, str]:
    """Fetch every file in `checksums` into `dest`, verifying md5. Returns {file: md5}."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if not mirrors:
        raise DownloadError("no mirrors given")
    result: dict[str, str] = {}
    for name, expected in checksums.items():
        target = dest / name
        if target.exists():
            actual = md5sum(target)
            if actual == expected:
                result[name] = actual
                continue
            target.unlink()
        actual = None
        for attempt in range(retries + 1):
            failures = _fetch_one(name, dest, mirrors, timeout, progress)
            if failures:
                raise DownloadError(
                    f"could not download {name}; every mirror failed:\n  "
                    + "\n  ".join(failures)
                )
            actual = md5sum(target)
            if actual == expected:
                result[name] = actual
                break
            target.unlink()
            if attempt < retries:
                time.sleep(min(0.5 * (attempt + 1), 2.0))
        else:
            raise DownloadError(
                f"checksum mismatch for {name} after {retries + 1} attempt(s): "
                f"expected md5 {expected}, got {actual}"
            )
    return result


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
