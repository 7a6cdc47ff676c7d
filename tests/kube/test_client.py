"""minikf.kube.client: kubeconfig loading and one-line errors for what makes a cluster unusable.

No Kubernetes control plane can run here, so the API server is `FakeApiServer`: a real HTTP server
on 127.0.0.1 that plays /version, discovery and SelfSubjectAccessReview (tests/kube/fake_apiserver.py).
The kubernetes client, kubeconfig parsing and HTTP are all real.
"""

from __future__ import annotations

import socket

import pytest

from minikf.kube.client import Crd, Permission, connect, require_crds, require_permissions
from minikf.runtime.errors import MinikfError
from tests.kube.fake_apiserver import FakeApiServer

KSERVE = Crd("serving.kserve.io", "v1beta1", "inferenceservices", "KServe")
PYTORCHJOB = Crd("kubeflow.org", "v1", "pytorchjobs", "Training Operator")
TRAINJOB = Crd("trainer.kubeflow.org", "v1alpha1", "trainjobs", "Kubeflow Trainer")


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


def test_kubeconfig_from_env_is_used(tmp_path, monkeypatch):
    with FakeApiServer() as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path)))
        cluster = connect(None)
        assert cluster.version == "v1.31.0-fake"
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
    with FakeApiServer() as api:
        with pytest.raises(MinikfError) as exc:
            connect(str(api.kubeconfig(tmp_path)), context="prod")
    assert "context 'prod' is not in kubeconfig" in _one_line(exc) and "known: fake" in exc.value.message


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
    with FakeApiServer() as api:
        path = api.kubeconfig(tmp_path)
    port = _closed_port()
    path.write_text(path.read_text().replace(api.url, f"http://127.0.0.1:{port}"))
    with pytest.raises(MinikfError) as exc:
        connect(str(path), timeout_s=2)
    message = _one_line(exc)
    assert message.startswith(f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}")
    assert "connection refused" in message and str(path) in message
    assert exc.value.exit_code == 3


def test_rejected_token(tmp_path):
    with FakeApiServer() as api:
        with pytest.raises(MinikfError) as exc:
            connect(str(api.kubeconfig(tmp_path, token="expired")))
    assert "rejected the credentials (HTTP 401)" in _one_line(exc)


def test_connect_reports_version_context_and_namespace(tmp_path):
    with FakeApiServer(git_version="v1.30.2") as api:
        cluster = connect(str(api.kubeconfig(tmp_path, namespace="kubeflow-user")))
        assert (cluster.version, cluster.context, cluster.namespace) == ("v1.30.2", "fake", "kubeflow-user")
        assert cluster.server == api.url
        cluster.close()


def test_missing_crds_are_named(tmp_path):
    crds = {("kubeflow.org", "v1", "pytorchjobs"), ("kubeflow.org", "v1", "notebooks")}
    with FakeApiServer(crds=crds) as api:
        cluster = connect(str(api.kubeconfig(tmp_path)))
        require_crds(cluster, [PYTORCHJOB])  # present: no error
        with pytest.raises(MinikfError) as exc:
            require_crds(cluster, [PYTORCHJOB, KSERVE, TRAINJOB])
        cluster.close()
    message = _one_line(exc)
    assert "inferenceservices.serving.kserve.io/v1beta1 (KServe)" in message
    assert "trainjobs.trainer.kubeflow.org/v1alpha1 (Kubeflow Trainer)" in message
    assert "pytorchjobs" not in message


def test_group_served_without_the_plural_is_missing(tmp_path):
    with FakeApiServer(crds={("kubeflow.org", "v1", "notebooks")}) as api:
        cluster = connect(str(api.kubeconfig(tmp_path)))
        with pytest.raises(MinikfError) as exc:
            require_crds(cluster, [PYTORCHJOB])
        cluster.close()
    assert "pytorchjobs.kubeflow.org/v1 (Training Operator)" in _one_line(exc)


def test_missing_permissions_name_verb_and_resource(tmp_path):
    allowed = {("create", "kubeflow.org", "pytorchjobs"), ("get", "", "pods")}
    with FakeApiServer(allowed=allowed) as api:
        cluster = connect(str(api.kubeconfig(tmp_path)))
        needs = [Permission("create", "pytorchjobs", "kubeflow.org"), Permission("get", "pods"),
                 Permission("create", "inferenceservices", "serving.kserve.io"),
                 Permission("create", "pods", subresource="portforward")]
        with pytest.raises(MinikfError) as exc:
            require_permissions(cluster, "team", needs)
        cluster.close()
    message = _one_line(exc)
    assert "missing permissions in namespace 'team'" in message
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
        with FakeApiServer() as api:
            path = api.kubeconfig(tmp_path)
        path.write_text(path.read_text().replace(api.url, f"http://127.0.0.1:{server.server_address[1]}"))
        with pytest.raises(MinikfError) as exc:
            connect(str(path))
    finally:
        server.shutdown()
        server.server_close()
    assert "answered /version with HTTP 404" in _one_line(exc)


def test_tls_to_a_plain_http_server_and_an_unknown_host(tmp_path):
    import json

    with FakeApiServer() as api:
        path = api.kubeconfig(tmp_path)
        path.write_text(path.read_text().replace("http://", "https://"))
        with pytest.raises(MinikfError) as exc:
            connect(str(path))
        assert _one_line(exc).endswith("TLS failed: wrong version number")
    doc = json.loads(path.read_text())
    doc["clusters"][0]["cluster"]["server"] = "https://no-such-host.invalid:6443"
    path.write_text(json.dumps(doc))
    with pytest.raises(MinikfError) as exc:
        connect(str(path))
    assert _one_line(exc).endswith("host name does not resolve")
