"""minikf.kube.client: kubeconfig loading and one-line errors for what makes a cluster unusable.

What needs an API server (version, discovery, credentials, RBAC) runs against the real one (tests
marked `kube`: the shared cluster, tests/kube/real_cluster.py), its refusals included: a bad token,
a ServiceAccount whose Role allows little. What needs no server, or a server that is not one (a
port nothing listens on, a plain HTTP server), uses kubeconfig files written here.
"""

from __future__ import annotations

import socket

import pytest

from minikf.kube.client import Crd, Permission, connect, require_crds, require_permissions
from minikf.runtime.errors import MinikfError
from tests.kube.real_cluster import restricted_kubeconfig, write_kubeconfig

KSERVE = Crd("serving.kserve.io", "v1beta1", "inferenceservices", "KServe")
PYTORCHJOB = Crd("kubeflow.org", "v1", "pytorchjobs", "Training Operator")
# Not on the shared cluster: TFJob's plural in a group it serves, and a group it does not serve.
TFJOB = Crd("kubeflow.org", "v1", "tfjobs", "Training Operator")
JOBSET = Crd("jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = exc.value.message
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_kubeconfig_names_the_path(tmp_path):
    with pytest.raises(MinikfError) as exc:
        connect(str(tmp_path / "missing.yaml"))
    assert f"kubeconfig {tmp_path / 'missing.yaml'} does not exist" in _one_line(exc)
    assert exc.value.exit_code == 2


def test_no_kubeconfig_anywhere_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "a.yaml"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MinikfError) as exc:
        connect(None)
    assert "no kubeconfig found" in _one_line(exc) and str(tmp_path / "a.yaml") in exc.value.message


@pytest.mark.kube
def test_kubeconfig_from_env_is_used(real_cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(real_cluster.kubeconfig))
    cluster = connect(None)
    assert cluster.version.startswith("v1.") and cluster.server == real_cluster.server
    cluster.close()


@pytest.mark.parametrize("text, expected", [
    ("{not: [yaml", "is not readable YAML"),
    ("just a string", "has no contexts"),
    ("apiVersion: v1\nkind: Config\ncontexts: []\n", "has no contexts"),
])
def test_not_a_kubeconfig(tmp_path, text, expected):
    path = tmp_path / "kc.yaml"
    path.write_text(text)
    with pytest.raises(MinikfError) as exc:
        connect(str(path))
    assert expected in _one_line(exc) and str(path) in exc.value.message


def test_unknown_context_lists_known_ones(tmp_path):
    path = write_kubeconfig(tmp_path / "kc.json", f"http://127.0.0.1:{_closed_port()}", context="dev")
    with pytest.raises(MinikfError) as exc:
        connect(str(path), context="prod")
    assert "context 'prod' is not in kubeconfig" in _one_line(exc) and "known: dev" in exc.value.message


def test_context_pointing_at_missing_cluster(tmp_path):
    path = tmp_path / "kc.yaml"
    path.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                    "contexts: [{name: c, context: {cluster: gone, user: u}}]\n"
                    "clusters: []\nusers: [{name: u, user: {token: t}}]\n")
    with pytest.raises(MinikfError) as exc:
        connect(str(path))
    assert "context 'c'" in _one_line(exc) and "gone" in exc.value.message


def test_unreachable_server_is_one_line(tmp_path):
    """What `minikf status` shows for a cluster that is down: a port nothing listens on."""
    port = _closed_port()
    path = write_kubeconfig(tmp_path / "kc.json", f"http://127.0.0.1:{port}")
    with pytest.raises(MinikfError) as exc:
        connect(str(path), timeout_s=2)
    message = _one_line(exc)
    assert message.startswith(f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}")
    assert "connection refused" in message and str(path) in message
    assert exc.value.exit_code == 3


@pytest.mark.kube
def test_rejected_token(real_cluster, tmp_path):
    path = write_kubeconfig(tmp_path / "kc.json", real_cluster.server, token="expired",
                            ca_data=real_cluster.ca_data())
    with pytest.raises(MinikfError) as exc:
        connect(str(path))
    assert "rejected the credentials (HTTP 401)" in _one_line(exc)
    assert exc.value.exit_code == 3


@pytest.mark.kube
def test_connect_reports_version_context_and_namespace(real_cluster, kube_ns, tmp_path):
    with restricted_kubeconfig(real_cluster, kube_ns, tmp_path, rules=[]) as path:
        cluster = connect(str(path))
        assert (cluster.version, cluster.context, cluster.namespace) == (
            real_cluster.cluster.version, "restricted", kube_ns)
        assert cluster.server == real_cluster.server and cluster.version.startswith("v1.")
        cluster.close()


@pytest.mark.kube
def test_missing_crds_are_named(real_cluster):
    require_crds(real_cluster.cluster, [PYTORCHJOB, KSERVE])  # served: no error
    with pytest.raises(MinikfError) as exc:
        require_crds(real_cluster.cluster, [PYTORCHJOB, JOBSET, KSERVE, TFJOB])
    message = _one_line(exc)
    assert "jobsets.jobset.x-k8s.io/v1alpha2 (JobSet)" in message
    assert "tfjobs.kubeflow.org/v1 (Training Operator)" in message  # its group is served
    assert "pytorchjobs" not in message and "inferenceservices" not in message
    assert exc.value.exit_code == 4


@pytest.mark.kube
def test_missing_permissions_name_verb_and_resource(real_cluster, kube_ns, tmp_path):
    """A ServiceAccount whose Role allows creating PyTorchJobs and getting pods, nothing else:
    the real API server's SelfSubjectAccessReview answers."""
    rules = [{"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"], "verbs": ["create"]},
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    with restricted_kubeconfig(real_cluster, kube_ns, tmp_path, rules) as path:
        cluster = connect(str(path))
        needs = [Permission("create", "pytorchjobs", "kubeflow.org"), Permission("get", "pods"),
                 Permission("create", "inferenceservices", "serving.kserve.io"),
                 Permission("create", "pods", subresource="portforward")]
        try:
            require_permissions(cluster, kube_ns, needs[:2])  # allowed: no error
            with pytest.raises(MinikfError) as exc:
                require_permissions(cluster, kube_ns, needs)
        finally:
            cluster.close()
    message = _one_line(exc)
    assert f"missing permissions in namespace '{kube_ns}'" in message
    assert "create inferenceservices.serving.kserve.io" in message and "create pods/portforward" in message
    assert "pytorchjobs" not in message and "get pods" not in message


def test_not_an_api_server(tmp_path):
    """A plain HTTP server where the kubeconfig points: /version is not Kubernetes'."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = write_kubeconfig(tmp_path / "kc.json", f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(MinikfError) as exc:
            connect(str(path))
    finally:
        server.shutdown()
        server.server_close()
    assert "answered /version with HTTP 404" in _one_line(exc)


def test_tls_to_a_plain_http_server_and_an_unknown_host(tmp_path):
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = write_kubeconfig(tmp_path / "kc.json", f"https://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(MinikfError) as exc:
            connect(str(path))
        assert _one_line(exc).endswith("TLS failed: wrong version number")
    finally:
        server.shutdown()
        server.server_close()
    path = write_kubeconfig(tmp_path / "kc.json", "https://no-such-host.invalid:6443")
    with pytest.raises(MinikfError) as exc:
        connect(str(path))
    assert _one_line(exc).endswith("host name does not resolve")
