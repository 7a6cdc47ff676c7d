"""Build the deps, runtime and server images from images/ with the docker SDK, tagged by content.

Each image's tag is a hash of its Dockerfile, its inputs and its parent image's id, so a
build whose tag already exists is skipped: a rebuild with nothing changed takes seconds.
The newest build of each is also tagged :latest (what the platform and the pipeline use).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from minikf.images import engine, wheelhouse
from minikf.images.base import CACHE, ensure_base_image
from minikf.runtime.errors import MinikfError

NAMES = ("deps", "runtime", "server")
WORKLOAD = "minikf/workload"  # the code containers run; the platform checks its hash


@dataclass
class Built:
    name: str
    tag: str
    built: bool  # False: the tag existed, nothing was done
    seconds: float


def content_tag(name: str, dockerfile: str, parent_id: str, *inputs: str) -> str:
    digest = hashlib.sha256("\0".join((dockerfile, parent_id, *inputs)).encode())
    return f"minikf/{name}:{digest.hexdigest()[:12]}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the build log says what pip fetched
        pass


@contextmanager
def serve_directory(path: Path) -> Iterator[str]:
    """The directory over HTTP on 127.0.0.1 (a free port) while the block runs."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _image_id(cli, ref: str, pull: bool = False) -> str:
    import docker

    try:
        return cli.images.get(ref).id
    except docker.errors.ImageNotFound:
        if not pull:
            raise
    try:
        return cli.images.pull(ref).id
    except docker.errors.DockerException as exc:
        raise MinikfError(f"base image {ref!r} is not here and could not be pulled: "
                          f"{str(exc).splitlines()[0][:200]}", 2) from None


def image_python(cli, ref: str) -> str:
    """The python3 version inside an image (3.11.2 on bookworm), asked in a throwaway container."""
    import docker

    argv = ["python3", "-c", "import platform; print(platform.python_version())"]
    container = cli.containers.create(ref, argv, network_mode="none", labels={engine.OWNER_LABEL: "1"})
    try:
        container.start()
        code = container.wait(timeout=60)["StatusCode"]
        version = container.logs().decode().strip()
    except docker.errors.DockerException as exc:
        first = str(exc).splitlines()[0][:200]
        raise MinikfError(f"base image {ref} has no usable python3 (needs 3.11 with venv): {first}", 2) \
            from None
    finally:
        container.remove(force=True)
    if code != 0 or not version.startswith("3.11."):
        raise MinikfError(f"base image {ref} has Python {version or '?'}; the wheels are cp311: use a base "
                          "with Python 3.11 (Debian bookworm)", 2)
    return version


def _docker_build(cli, context: Path, tag: str, buildargs: dict, log: Path) -> None:
    """One `docker build` (host network: pip reaches the wheelhouse on 127.0.0.1)."""
    lines: list[str] = []
    with open(log, "w") as out:
        for chunk in cli.api.build(path=str(context), tag=tag, buildargs=buildargs, network_mode="host",
                                   rm=True, forcerm=True, decode=True):
            text = chunk.get("stream") or chunk.get("status") or ""
            if text:
                out.write(text)
                lines.extend(text.rstrip().splitlines())
            if "error" in chunk:
                out.write(chunk["error"] + "\n")
                tail = "\n".join(lines[-8:])
                raise MinikfError(f"building {tag} failed: {chunk['error'].strip()} (log: {log})\n{tail}")


def _tag_latest(cli, tag: str) -> None:
    repo, _, _ = tag.partition(":")
    cli.images.get(tag).tag(repo, "latest")


def build_all(base: str | None = None, say: Callable[[str], None] = print,
              mirror: str | None = None) -> list[Built]:
    """Build (or find) deps, runtime and server; `base` is an image ref, None for the rootfs base
    (debootstrap from `mirror`)."""
    import docker

    root = wheelhouse.project_root()
    images_dir = root / "images"
    base_ref = base or ensure_base_image(mirror=mirror, say=say)
    cli = engine.client()
    logs = CACHE / "build-logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: list[Built] = []

    def step(name: str, parent_id: str, inputs: tuple[str, ...], prepare, buildargs) -> str:
        started = time.monotonic()
        dockerfile = (images_dir / name / "Dockerfile").read_text()
        tag = content_tag(name, dockerfile, parent_id, *inputs)
        try:
            cli.images.get(tag)
            built = False
        except docker.errors.ImageNotFound:
            say(f"building {tag}")
            with tempfile.TemporaryDirectory(prefix=f"minikf-ctx-{name}-") as tmp:
                shutil.copy(images_dir / name / "Dockerfile", Path(tmp) / "Dockerfile")
                with prepare(Path(tmp)) as extra_args:
                    _docker_build(cli, Path(tmp), tag, {**buildargs, **extra_args}, logs / f"{name}.log")
            built = True
        _tag_latest(cli, tag)
        results.append(Built(name, tag, built, round(time.monotonic() - started, 1)))
        say(f"{'built' if built else 'up to date'}: {tag} ({results[-1].seconds}s)")
        return cli.images.get(tag).id

    try:
        base_id = _image_id(cli, base_ref, pull=base is not None)
        wheels = CACHE / "wheelhouse"
        python = image_python(cli, base_ref)
        requirements = wheelhouse.fill(wheels, wheelhouse.pinned_requirements(), python, say=say)
        req_text = "\n".join(requirements) + "\n"

        @contextmanager
        def deps_context(ctx: Path):
            (ctx / "requirements.txt").write_text(req_text)
            with serve_directory(wheels) as url:
                yield {"WHEELS_URL": url}

        deps_id = step("deps", base_id, (req_text,), deps_context,
                       {"BASE": base_ref, "PYTHON_VERSION": python})

        source = wheelhouse.source_hash(root)

        @contextmanager
        def runtime_context(ctx: Path):
            (ctx / "minikf.whl.d").mkdir()
            wheelhouse.build_minikf_wheel(root, ctx / "minikf.whl.d")
            yield {}

        deps_tag = results[-1].tag
        runtime_id = step("runtime", deps_id, (source,), runtime_context,
                          {"DEPS": deps_tag, "SOURCE_HASH": source,
                           "WORKLOAD_HASH": wheelhouse.source_hash(root, WORKLOAD)})

        @contextmanager
        def nothing(ctx: Path):
            yield {}

        step("server", runtime_id, (), nothing, {"RUNTIME": results[-1].tag})
    except docker.errors.DockerException as exc:
        raise MinikfError(f"docker: {str(exc).splitlines()[0][:300]}") from None
    finally:
        cli.close()
    return results


def list_images() -> list[dict]:
    """Every image minikf built (label minikf=1), newest first."""
    cli = engine.client()
    try:
        rows = []
        for image in cli.images.list(filters={"label": f"{engine.OWNER_LABEL}=1"}):
            labels = image.labels or {}
            rows.append({"image": labels.get("minikf.image", "?"), "tags": sorted(image.tags),
                         "id": image.short_id.split(":")[-1], "created": image.attrs.get("Created", "")[:19],
                         "size_mb": round(image.attrs.get("Size", 0) / 1e6),
                         "source": labels.get("minikf.source", "")})
        return sorted(rows, key=lambda r: r["created"], reverse=True)
    finally:
        cli.close()


def prune_images() -> tuple[list[str], list[str]]:
    """Remove older content tags of deps/runtime/server and untagged minikf layers.

    Kept: every :latest and every base image (a base is minutes of debootstrap).
    Returns (removed, kept back with the reason).
    """
    import docker

    cli = engine.client()
    removed, kept = [], []
    try:
        for image in cli.images.list(filters={"label": f"{engine.OWNER_LABEL}=1"}):
            kind = (image.labels or {}).get("minikf.image")
            if kind == "base" and image.tags:
                continue
            if any(t.endswith(":latest") for t in image.tags):
                continue
            for ref in image.tags or [image.id]:
                try:
                    cli.images.remove(ref, noprune=False)
                    removed.append(ref if image.tags else image.short_id)
                except docker.errors.APIError as exc:  # e.g. a child image still uses it
                    kept.append(f"{ref}: {exc.explanation}")
    finally:
        cli.close()
    return removed, kept
