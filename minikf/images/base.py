"""The Debian base image, built from a local root filesystem: no registry needed.

`debootstrap` makes a minimal bookworm root filesystem from a Debian mirror (the one apt
already uses here, or MINIKF_DEBIAN_MIRROR), and the docker SDK imports it as an image.
The tag is a hash of the recipe, so an image built from the same recipe is reused.
Bookworm's python3 is 3.11, so the host's cp311 wheels install in it unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from minikf.images import engine
from minikf.runtime.errors import MinikfError

REPOSITORY = "minikf/base"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE = Path(os.environ.get("MINIKF_CACHE", Path.home() / ".cache" / "minikf"))


def debian_mirror(sources: list[Path] | None = None) -> str:
    """MINIKF_DEBIAN_MIRROR, else the first non-security Debian URI apt is configured with."""
    if os.environ.get("MINIKF_DEBIAN_MIRROR"):
        return os.environ["MINIKF_DEBIAN_MIRROR"].rstrip("/")
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or path.suffix not in ("", ".list", ".sources"):
            continue
        text = path.read_text(errors="replace")
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", text, re.M)
        for uri in uris:
            if "security" not in uri and "debian" in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def recipe(mirror: str) -> dict:
    return {"suite": SUITE, "variant": "minbase", "packages": list(PACKAGES), "mirror": mirror,
            "version": 1}


def base_tag(mirror: str | None = None) -> str:
    """minikf/base:bookworm-<hash of the recipe>."""
    digest = hashlib.sha256(repr(sorted(recipe(mirror or debian_mirror()).items())).encode())
    return f"{REPOSITORY}:{SUITE}-{digest.hexdigest()[:12]}"


def _debootstrap() -> str:
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if not found:
        raise MinikfError("building the base image needs debootstrap: sudo apt-get install debootstrap "
                          "(or pass --base IMAGE, an image with python3.11 and python3-venv)", 2)
    if os.geteuid() != 0:
        raise MinikfError("building the base image runs debootstrap, which needs root: run "
                          "`sudo minikf images build`, or pass --base IMAGE (python3.11 + python3-venv)", 2)
    return found


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise MinikfError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _build(cli, tag: str, mirror: str, say: Callable[[str], None]) -> None:
    debootstrap = _debootstrap()
    with tempfile.TemporaryDirectory(prefix="minikf-rootfs-") as tmp:
        root, tarball = Path(tmp) / "root", Path(tmp) / "rootfs.tar"
        say(f"debootstrap {SUITE} from {mirror}")
        _run([debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root),
              mirror], "debootstrap")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        _run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."], "tar of the rootfs")
        say(f"docker import -> {tag}")
        repo, _, version = tag.partition(":")
        cli.api.import_image_from_file(
            str(tarball), repository=repo, tag=version,
            changes=[f"LABEL {engine.OWNER_LABEL}=1 minikf.image=base", "ENV LANG=C.UTF-8",
                     'CMD ["/bin/bash"]'])


def ensure_base_image(mirror: str | None = None, say: Callable[[str], None] | None = None) -> str:
    """The base image's tag; builds it (debootstrap + import) only when it is not there yet.

    Safe to call from several processes at once: a file lock makes one build, the rest wait.
    """
    say = say or (lambda _msg: None)
    mirror = mirror or debian_mirror()
    tag = base_tag(mirror)
    cli = engine.client()
    try:
        import docker

        CACHE.mkdir(parents=True, exist_ok=True)
        with open(CACHE / "base.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                cli.images.get(tag)
                say(f"{tag} exists")
            except docker.errors.ImageNotFound:
                _build(cli, tag, mirror, say)
    finally:
        cli.close()
    return tag
