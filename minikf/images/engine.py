"""One way to reach the Docker Engine, with messages that name the fix instead of tracebacks."""

from __future__ import annotations

import os
from pathlib import Path

from minikf.runtime.errors import MinikfError
from minikf.runtime.liverun import is_running, started_at

RUN_LABEL = "minikf.run"  # every container/network/volume a run creates carries it
OWNER_LABEL = "minikf"  # every image and container minikf creates carries minikf=1
# "pid:start time" of the minikf process that started a run's container: `minikf clean` leaves
# a container alone while that process lives (its run is not over), whatever home it runs from.
PROCESS_LABEL = "minikf.process"

_SOCKET = Path("/var/run/docker.sock")


def _explain(exc: Exception) -> str:
    """One line: what is wrong with the engine connection and what to do about it."""
    text = str(exc)
    host = os.environ.get("DOCKER_HOST", "")
    if "Permission denied" in text or "PermissionError" in text:
        return (f"no permission to use the Docker Engine at {host or _SOCKET}: add your user to the "
                "'docker' group (sudo usermod -aG docker $USER, then log in again) or run as root")
    if (not host and not _SOCKET.exists()) or "No such file or directory" in text \
            or "Connection refused" in text:
        return (f"no Docker Engine at {host or _SOCKET}: install one (Debian: sudo apt-get install "
                "docker.io) and start it (sudo systemctl start docker, or sudo dockerd)")
    return f"cannot reach the Docker Engine at {host or _SOCKET}: {text.splitlines()[0][:200]}"


def client():
    """A connected docker.DockerClient, or a MinikfError saying what to install or join."""
    try:
        import docker
    except ImportError:
        raise MinikfError("the docker Python SDK is missing: pip install docker", 2) from None
    try:
        cli = docker.from_env(timeout=600)
        cli.ping()
    except docker.errors.DockerException as exc:
        raise MinikfError(_explain(exc), 2) from None
    return cli


def available() -> str | None:
    """None when the engine answers, else the one-line reason it does not."""
    try:
        client().close()
    except MinikfError as exc:
        return exc.message
    return None


def this_process() -> str:
    """This process as PROCESS_LABEL records it."""
    return f"{os.getpid()}:{started_at(os.getpid()) or 0:.3f}"


def process_alive(label: str | None) -> bool:
    """The process a PROCESS_LABEL names still runs (same pid, same start time)."""
    try:
        pid, started = (label or "").split(":")
        return is_running(int(pid), float(started))
    except ValueError:
        return False

