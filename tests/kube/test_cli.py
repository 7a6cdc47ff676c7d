"""`minikf run/conformance --platform kubernetes` from a user's side: one line, no traceback.

Runs the real `minikf` entry point in a subprocess. The unreachable case points a kubeconfig at
a 127.0.0.1 port nothing listens on; no Kubernetes API server runs here.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.kube.fake_apiserver import FakeApiServer


def _minikf(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minikf.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def _assert_one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_run_with_a_missing_kubeconfig(tmp_path):
    proc = _minikf("run", "fashion-mnist", "--platform", "kubernetes", "--kubeconfig", "missing.yaml",
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert _assert_one_line(proc) == ("error: kubeconfig missing.yaml does not exist; "
                                      "pass --kubeconfig with a kubeconfig file")


@pytest.mark.parametrize("command", ["run fashion-mnist", "conformance"])
def test_unreachable_cluster(tmp_path, command):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with FakeApiServer() as api:
        kubeconfig = api.kubeconfig(tmp_path)
    kubeconfig.write_text(kubeconfig.read_text().replace(api.url, f"http://127.0.0.1:{port}"))
    proc = _minikf(*command.split(), "--platform", "kubernetes", "--kubeconfig", str(kubeconfig),
                   "--results", str(tmp_path / "results"), cwd=tmp_path)
    assert proc.returncode == 3
    line = _assert_one_line(proc)
    assert line.startswith(f"error: cannot reach the Kubernetes API server at http://127.0.0.1:{port}")
    assert line.endswith("connection refused")


def test_kubeconfig_is_refused_for_other_platforms(tmp_path):
    proc = _minikf("run", "fashion-mnist", "--kubeconfig", "k.yaml", "--namespace", "ml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--kubeconfig and --namespace are for --platform kubernetes only" in _assert_one_line(proc)


def test_relay_pipes_both_ways_and_closes(tmp_path):
    """The port-forward's local side, against a real TCP echo server (the remote end)."""
    import threading

    from minikf.kube.portforward import Relay

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    threading.Thread(target=echo, daemon=True).start()
    relay = Relay(lambda: socket.create_connection(server.getsockname()))
    url = relay.start()
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"predict")
        assert client.recv(1024) == b"PREDICT"
    relay.close()
    server.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_relay_keeps_why_the_remote_failed():
    from minikf.kube.portforward import Relay

    def refuse():
        raise ConnectionRefusedError("pod not running")

    relay = Relay(refuse)
    port = int(relay.start().rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        assert client.recv(10) == b""  # closed
    relay.close()
    assert relay.errors == ["ConnectionRefusedError: pod not running"]


def test_kube_check_lists_what_the_cluster_has_and_lacks(tmp_path):
    crds = {("kubeflow.org", "v1", "pytorchjobs"), ("serving.kserve.io", "v1beta1", "inferenceservices")}
    allowed = {("create", "", "configmaps"), ("delete", "", "configmaps"), ("list", "", "pods"),
               ("get", "", "pods/log")}
    with FakeApiServer(crds=crds, allowed=allowed) as api:
        proc = _minikf("kube", "check", "--kubeconfig", str(api.kubeconfig(tmp_path)), "--namespace", "ml",
                       cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "(Kubernetes v1.31.0-fake, context fake), namespace ml" in out
    assert "✓ pytorchjobs.kubeflow.org" in out and "- trainjobs.trainer.kubeflow.org" in out
    assert "capabilities: serving, training" in out
    assert "missing permissions in namespace 'ml': create pytorchjobs.kubeflow.org" in out
    assert "create pods/portforward" in out


def test_kube_check_passes_on_a_complete_cluster(tmp_path, monkeypatch):
    """The Kubeflow CRDs and their controllers' Deployments with a ready replica: discovery
    chooses the kubeflow flavor for both, and nothing is missing."""
    monkeypatch.delenv("MINIKF_KUBE_FLAVOR")
    crds = {("kubeflow.org", "v1", "pytorchjobs"), ("serving.kserve.io", "v1beta1", "inferenceservices")}
    with FakeApiServer(crds=crds) as api:
        for name in ("training-operator", "kserve-controller-manager"):
            api.objects[("apps", "kubeflow", "deployments", name)] = {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "kubeflow"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:v1"}]}}},
                "status": {"readyReplicas": 1}}
        proc = _minikf("kube", "check", "--kubeconfig", str(api.kubeconfig(tmp_path)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "permissions: all 13 verbs the journeys use are allowed" in proc.stdout
    assert "training: kubeflow (pytorchjobs.kubeflow.org): training-operator is ready" in proc.stdout
    assert "✗" not in proc.stdout
