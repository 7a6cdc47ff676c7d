"""`minikf run/conformance --platform kubernetes` from a user's side: one line, no traceback.

Runs the real `minikf` entry point in a subprocess. The unreachable case points a kubeconfig at
a 127.0.0.1 port nothing listens on; `kube check` runs against the real API server (tests marked
`kube`, tests/kube/real_cluster.py), as the admin and as a ServiceAccount RBAC allows little.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.real_cluster import restricted_kubeconfig, write_kubeconfig


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
    kubeconfig = write_kubeconfig(tmp_path / "kc.json", f"http://127.0.0.1:{port}")
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


@pytest.mark.kube
def test_kube_check_lists_what_the_cluster_has_and_lacks(real_cluster, kube_ns, tmp_path):
    """A ServiceAccount whose Role allows only the ConfigMap and pod-log verbs (real RBAC): the
    check names every other verb the journeys need, and exits 1."""
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "delete"]},
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]
    with restricted_kubeconfig(real_cluster, kube_ns, tmp_path, rules) as kubeconfig:
        proc = _minikf("kube", "check", "--kubeconfig", str(kubeconfig), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    version = real_cluster.cluster.version
    assert f"(Kubernetes {version}, context restricted), namespace {kube_ns}" in out
    assert "✓ pytorchjobs.kubeflow.org" in out and "✓ trainjobs.trainer.kubeflow.org" in out
    assert "✓ inferenceservices.serving.kserve.io" in out
    assert "Kubeflow Pipelines API: not checked: listing pods in 'kubeflow' gave HTTP 403" in out
    assert "training: kubeflow (pytorchjobs.kubeflow.org): forced (--flavor kubeflow)" in out
    assert "capabilities: serving, training" in out
    assert f"missing permissions in namespace '{kube_ns}': create pytorchjobs.kubeflow.org" in out
    assert "create pods/portforward" in out and "create configmaps" not in out


def test_kube_check_passes_on_a_complete_cluster(tmp_path, monkeypatch):
    """The Kubeflow CRDs and their controllers' Deployments with a ready replica: discovery
    chooses the kubeflow flavor for both, and nothing is missing. Still on FakeApiServer: the
    controller Deployments live in the cluster-wide kubeflow namespace; made on the shared real
    cluster, every other test's discovery would find them."""
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


@pytest.mark.kube
def test_kube_check_forced_kubeflow_on_a_cluster_without_its_operators(real_cluster, kube_ns, tmp_path):
    """The real cluster as its admin: every verb allowed, the CRDs served, but no operator's
    Deployment anywhere: the forced kubeflow flavor is reported as what will not work."""
    proc = _minikf("kube", "check", "--kubeconfig", str(real_cluster.kubeconfig), "--namespace", kube_ns,
                   cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "permissions: all 13 verbs the journeys use are allowed" in proc.stdout
    assert ("✗ training: pytorchjobs.kubeflow.org is served but training-operator is not found: "
            "nothing would reconcile it") in proc.stdout
    assert ("✗ serving: inferenceservices.serving.kserve.io is served but kserve-controller-manager "
            "is not found") in proc.stdout
