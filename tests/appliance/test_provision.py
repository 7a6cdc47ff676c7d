"""vagrant/provision.sh run for real inside a Debian 12 container, checked with pytest-testinfra.

The container comes from minikf.images.base.ensure_base_image() (debootstrap + docker import, no
registry). It runs every stage a container allows: Debian packages (from the Debian mirror apt
uses), the sysctl file, the data directory and Docker's data-root, kind and kubectl fetched through
MINIKF_BINARY_MIRROR with checksum verification, the docker group and service enablement. Not run:
the `minikf` and `cluster` stages (they need a Docker engine and a kind cluster inside), and
applying the sysctls and formatting a data disk (a container may do neither).

The kind and kubectl served here are two-line stand-ins that print their version: the real
binaries cannot be downloaded on this machine. They are served from 127.0.0.1 with .sha256 files
like the upstream download sites, so the download and checksum path is the real one.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from minikf.appliance.tools import Tools
from minikf.appliance.vagrant import ROOT

testinfra = pytest.importorskip("testinfra",
                                reason="pytest-testinfra is not installed (pip install -e '.[test]')")

KIND, KUBECTL = "v0.27.0", "v1.32.2"
STAGES = "packages sysctl datadisk binaries docker"


def _engine_problem() -> str | None:
    try:
        from minikf.images import engine
    except ImportError:
        return "minikf.images is not importable"
    return engine.available()


def _publish(root: Path, relative: str, body: str, checksum_suffix: str, checksum: str | None = None) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)
    digest = checksum or hashlib.sha256(body.encode()).hexdigest()
    Path(f"{path}{checksum_suffix}").write_text(f"{digest}  {path.name}\n")


@pytest.fixture
def mirror(tmp_path):
    """kind/kubectl stand-ins laid out like kind.sigs.k8s.io/dl and dl.k8s.io/release, on 127.0.0.1."""
    root = tmp_path / "mirror"
    kind = f'#!/bin/sh\necho "kind {KIND} go1.23.6 linux/amd64"\n'
    kubectl = f'#!/bin/sh\necho "Client Version: {KUBECTL}"\n'
    _publish(root, f"{KIND}/kind-linux-amd64", kind, ".sha256sum")
    _publish(root, f"{KUBECTL}/bin/linux/amd64/kubectl", kubectl, ".sha256")
    tampered = "#!/bin/sh\necho tampered\n"
    _publish(root, "v9.9.9/bin/linux/amd64/kubectl", tampered, ".sha256", checksum="0" * 64)
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def provisioned(mirror):
    """A container that has run provision.sh twice (the second run must change nothing)."""
    problem = _engine_problem()
    if problem:
        pytest.skip(f"no Docker engine to run the provisioning in: {problem}")
    from minikf.images.base import ensure_base_image

    image = ensure_base_image()
    docker = Tools()
    name = f"minikf-provision-{uuid.uuid4().hex[:8]}"
    # Host network: apt reaches the Debian mirror and the script reaches the mirror above on 127.0.0.1.
    docker.run("docker", "run", "-d", "--rm", "--name", name, "--network", "host", "--label", "minikf=1",
               "-v", f"{ROOT}:/src:ro", image, "sleep", "1800", timeout_s=120)
    try:
        docker.run("docker", "exec", name, "useradd", "-m", "vagrant", timeout_s=60)
        env = ["-e", f"MINIKF_STAGES={STAGES}", "-e", f"MINIKF_BINARY_MIRROR={mirror}"]
        runs = [docker.run("docker", "exec", *env, name, "bash", "/src/vagrant/provision.sh", timeout_s=900,
                           check=False) for _ in range(2)]
        yield name, runs, docker, env
    finally:
        docker.run("docker", "rm", "-f", name, timeout_s=120, check=False)


@pytest.mark.slow
def test_provisioning_in_a_debian_container(provisioned):
    """One test, one container: under pytest-xdist separate tests could each build their own."""
    _check_runs(provisioned)
    _check_host(provisioned)
    _check_checksum_mismatch(provisioned)


def _check_runs(provisioned):
    _, (first, second), _, _ = provisioned
    assert first.ok, first.stdout + first.stderr
    assert second.ok, second.stdout + second.stderr
    assert f"kind {KIND} from " in first.stdout and "packages: installing" in first.stdout
    assert "packages: all present" in second.stdout  # idempotent: the second run changes nothing
    assert f"kind {KIND} present" in second.stdout and f"kubectl {KUBECTL} present" in second.stdout
    assert "could not apply /etc/sysctl.d/99-minikf.conf here" in first.stderr
    assert "no data disk found" in first.stderr


def _check_host(provisioned):
    name = provisioned[0]
    host = testinfra.get_host(f"docker://{name}")
    for package in ("docker.io", "curl", "procps", "python3-venv", "iptables", "e2fsprogs"):
        assert host.package(package).is_installed, package
    sysctl = host.file("/etc/sysctl.d/99-minikf.conf")
    assert sysctl.contains("^fs.inotify.max_user_watches = 524288$")
    assert sysctl.contains("^fs.inotify.max_user_instances = 512$")
    for binary, expected in (("kind", f"kind {KIND} "), ("kubectl", f"Client Version: {KUBECTL}")):
        assert host.file(f"/usr/local/bin/{binary}").mode == 0o755
        assert host.check_output(f"/usr/local/bin/{binary} version") .startswith(expected)
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon == {"data-root": "/srv/minikf-data/docker"}
    assert host.file("/srv/minikf-data/volumes").is_directory
    assert "docker" in host.user("vagrant").groups
    # The service: enabled for boot by the package and the script (no systemd runs in a container).
    assert host.file("/etc/systemd/system/multi-user.target.wants/docker.service").is_symlink


def _check_checksum_mismatch(provisioned):
    name, _, docker, env = provisioned
    only = ["-e", "MINIKF_STAGES=binaries", "-e", "MINIKF_KUBECTL_VERSION=v9.9.9",
            "-e", "MINIKF_BIN_DIR=/tmp"]
    result = docker.run("docker", "exec", *env, *only, name, "bash", "/src/vagrant/provision.sh",
                        timeout_s=300, check=False)
    assert result.returncode == 1
    assert "ERROR: checksum mismatch for" in result.stderr and "expected 0000" in result.stderr
    assert not testinfra.get_host(f"docker://{name}").file("/tmp/kubectl").exists
