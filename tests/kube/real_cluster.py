"""The real Kubernetes cluster for tests marked `kube`: a namespace of their own, checked empty.

The cluster is the project's shared single-node Kubernetes (shared/k8s/cluster.sh: a real
kube-apiserver with the Kubeflow, KServe and Trainer CRDs applied, a kubelet running real pods).
Its API answers only inside its network namespace, so these tests run with pytest itself in there:

    bash ../shared/k8s/cluster.sh exec python -m pytest -m kube tests/kube tests/platforms

One test at a time (no -n): the node has 2 CPUs and the training pods ask for one each, so two
2-pod jobs at once can each hold a CPU and wait for the other's.

Elsewhere they skip, saying which of these is missing: the kubeconfig (cluster not up), the API
server (pytest not in the netns), the CRDs (`cluster.sh crds`), the runtime image in the node's
containerd (`cluster.sh load-image`). The cluster is shared: each test module gets a namespace with
a unique name, deleted after it, and nothing outside it is touched. After every test the namespace
must hold nothing the test or the platform made (pods, jobs, deployments, services, config maps,
secrets, RBAC, PyTorchJobs, TrainJobs, InferenceServices): what was deleted must be gone, not
merely asked to go.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from minikf.kube import objects as res

KUBECONFIG_ENV = "MINIKF_K8S_KUBECONFIG"
TEST_LABEL = "minikf.dev/test"
# How long deleted objects (and pods in their grace period) may take to be gone.
GONE_WITHIN_S = 90.0
CUSTOM = [res.PYTORCHJOB, res.TRAINJOB, res.INFERENCESERVICE]
HOW_TO_RUN = "bash ../shared/k8s/cluster.sh exec python -m pytest -m kube ..."


def kubeconfig_path() -> Path:
    """$MINIKF_K8S_KUBECONFIG, else where cluster.sh writes it ($MINIKF_K8S_DIR/kubeconfig)."""
    if os.environ.get(KUBECONFIG_ENV):
        return Path(os.environ[KUBECONFIG_ENV])
    state = os.environ.get("MINIKF_K8S_DIR") or os.path.join(os.environ.get("TMPDIR") or "/tmp", "minikf-k8s")
    return Path(state) / "kubeconfig"


def write_kubeconfig(path: Path, server: str, token: str | None = None, namespace: str = "default",
                     context: str = "test", ca_data: str | None = None) -> Path:
    """A kubeconfig file for `server` with a bearer-token user (a file only: no server is started)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": "tester", "user": {"token": token or "no-token"}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": "tester",
                                                   "namespace": namespace}}],
    }))
    return path


@dataclass
class RealCluster:
    """The reachable shared cluster, with an admin client."""

    kubeconfig: Path
    cluster: Any  # minikf.kube.client.Cluster

    @property
    def api_client(self):
        return self.cluster.api_client

    @property
    def server(self) -> str:
        return self.cluster.server

    def core(self):
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    def custom(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def ca_data(self) -> str:
        import yaml

        doc = yaml.safe_load(self.kubeconfig.read_text())
        return doc["clusters"][0]["cluster"]["certificate-authority-data"]

    def image_names(self, image: str) -> list[str]:
        """Every name the node's container runtime knows `image` by (its other tags included),
        or [] when the node does not have it (pods never pull here)."""
        wanted = {image, f"docker.io/{image}", f"docker.io/library/{image}"}
        for node in self.core().list_node().items:
            for found in node.status.images or []:
                if wanted & set(found.names or []):
                    return list(found.names)
        return []


def connect_or_skip() -> RealCluster:
    """The shared cluster, or pytest.skip naming what is missing and how to get it."""
    from minikf.kube.client import connect, missing_crds
    from minikf.runtime.errors import MinikfError

    path = kubeconfig_path()
    if not path.is_file():
        pytest.skip(f"no kubeconfig at {path}: the shared cluster is not up "
                    f"(bash ../shared/k8s/cluster.sh up && ... crds), or set {KUBECONFIG_ENV}")
    try:
        cluster = connect(str(path), timeout_s=5)
    except MinikfError as exc:
        pytest.skip(f"the cluster's API server does not answer here ({exc.message}); run pytest inside "
                    f"its network namespace: {HOW_TO_RUN}")
    absent = missing_crds(cluster, CUSTOM)
    if absent:
        cluster.close()
        pytest.skip(f"the cluster lacks the CRDs {', '.join(c.name for c in absent)}: "
                    f"bash ../shared/k8s/cluster.sh crds")
    return RealCluster(kubeconfig=path, cluster=cluster)


def create_namespace(real: RealCluster, prefix: str) -> str:
    """A namespace of this test module's own, with a unique name."""
    name = f"{prefix[:40].rstrip('-')}-{uuid.uuid4().hex[:6]}"
    real.core().create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name, "labels": {TEST_LABEL: "namespace"}}})
    # the service-account admission plugin refuses pods until the namespace's "default" exists
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(sa.metadata.name == "default"
               for sa in real.core().list_namespaced_service_account(name).items):
            break
        time.sleep(0.2)
    return name


def delete_namespace(real: RealCluster, name: str, timeout_s: float = GONE_WITHIN_S) -> None:
    """Delete the namespace and wait until the API server no longer has it."""
    from kubernetes.client.rest import ApiException

    try:
        real.core().delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            real.core().read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.5)
    raise AssertionError(f"namespace {name} still there {timeout_s:g}s after its deletion")


def _names(items) -> list[str]:
    return [i["metadata"]["name"] if isinstance(i, dict) else i.metadata.name for i in items]


def leftovers(real: RealCluster, namespace: str) -> list[str]:
    """Every object in `namespace` that a test, the platform or a stand-in made ("kind/name");
    what Kubernetes puts in every namespace (kube-root-ca.crt, the default service account and its
    token) is not counted."""
    from kubernetes import client

    api = real.api_client
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    apps, rbac = client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    found: list[str] = []
    listers = {
        "pod": core.list_namespaced_pod, "service": core.list_namespaced_service,
        "job": batch.list_namespaced_job, "deployment": apps.list_namespaced_deployment,
        "replicaset": apps.list_namespaced_replica_set, "role": rbac.list_namespaced_role,
        "rolebinding": rbac.list_namespaced_role_binding,
    }
    for kind, lister in listers.items():
        found += [f"{kind}/{n}" for n in _names(lister(namespace).items)]
    found += [f"configmap/{n}" for n in _names(core.list_namespaced_config_map(namespace).items)
              if n != "kube-root-ca.crt"]
    found += [f"secret/{s.metadata.name}" for s in core.list_namespaced_secret(namespace).items
              if s.type != "kubernetes.io/service-account-token"]
    found += [f"serviceaccount/{n}" for n in _names(core.list_namespaced_service_account(namespace).items)
              if n != "default"]
    custom = real.custom()
    for crd in CUSTOM:
        items = custom.list_namespaced_custom_object(crd.group, crd.version, namespace, crd.plural)["items"]
        found += [f"{crd.plural}/{n}" for n in _names(items)]
    return found


def assert_nothing_left(real: RealCluster, namespace: str, timeout_s: float = GONE_WITHIN_S) -> None:
    """Wait for the namespace to hold nothing made by a test (garbage collection and pod grace
    periods take a while); fail naming what is still there."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = leftovers(real, namespace)
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left in namespace {namespace} {timeout_s:g}s after the test: "
                                 f"{', '.join(sorted(left))}")
        time.sleep(1.0)


@contextmanager
def restricted_kubeconfig(real: RealCluster, namespace: str, directory: Path,
                          rules: list[dict]) -> Iterator[Path]:
    """A kubeconfig for a ServiceAccount that RBAC allows only `rules` in `namespace` (a Role and
    RoleBinding), with a token from the TokenRequest API; all three are deleted on exit."""
    from kubernetes import client

    name = f"restricted-{uuid.uuid4().hex[:6]}"
    meta = {"name": name, "namespace": namespace, "labels": {TEST_LABEL: name}}
    core, rbac = real.core(), client.RbacAuthorizationV1Api(real.api_client)
    core.create_namespaced_service_account(namespace, {"metadata": meta})
    try:
        rbac.create_namespaced_role(namespace, {"metadata": meta, "rules": rules})
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
        token = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": 600}}).status.token
        yield write_kubeconfig(directory / f"{name}.kubeconfig", real.server, token, namespace,
                               context="restricted", ca_data=real.ca_data())
    finally:
        for delete in (rbac.delete_namespaced_role_binding, rbac.delete_namespaced_role,
                       core.delete_namespaced_service_account):
            try:
                delete(name, namespace)
            except client.rest.ApiException as exc:
                if exc.status != 404:
                    raise


# -- fixtures (registered for every test by tests/conftest.py's pytest_plugins) -----------------

@pytest.fixture(scope="session")
def real_cluster() -> Iterator[RealCluster]:
    """The shared cluster with an admin client, or a skip saying why it cannot be used here."""
    real = connect_or_skip()
    yield real
    real.cluster.close()


@pytest.fixture(scope="module")
def module_namespace(request, real_cluster) -> Iterator[str]:
    """A namespace of this module's own (unique name), deleted and gone after its last test, and
    holding nothing any test made when it goes."""
    module = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    name = create_namespace(real_cluster, f"minikf-{module}")
    try:
        yield name
    finally:
        try:
            assert_nothing_left(real_cluster, name)
        finally:
            delete_namespace(real_cluster, name)


@pytest.fixture
def kube_ns(real_cluster, module_namespace) -> Iterator[str]:
    """The module's namespace for one test; after it, nothing the test made may be left there."""
    yield module_namespace
    assert_nothing_left(real_cluster, module_namespace)


@pytest.fixture(scope="session")
def runtime_image(real_cluster) -> str:
    """The runtime image the pods run, present in the node's containerd (nothing pulls here)."""
    image = os.environ.get("MINIKF_RUNTIME_IMAGE", res.RUNTIME_IMAGE)
    if not real_cluster.image_names(image):
        pytest.skip(f"the cluster's node has no image {image}: docker build it (minikf images build), "
                    f"then bash ../shared/k8s/cluster.sh load-image {image}")
    return image


@pytest.fixture(scope="session")
def pinned_runtime_image(real_cluster, runtime_image) -> str:
    """The runtime image by a tag other than latest, which Kubernetes does not always pull: what a
    TrainJob needs, as it cannot set imagePullPolicy (the content tag `minikf images build` gives)."""
    if not res.always_pulled(runtime_image):
        return runtime_image
    repo = runtime_image.rsplit(":", 1)[0] if ":" in runtime_image.rsplit("/", 1)[-1] else runtime_image
    for name in real_cluster.image_names(runtime_image):  # e.g. docker.io/minikf/runtime:249fbc3c8a7d
        if "@" not in name and not res.always_pulled(name) and name.rsplit(":", 1)[0].endswith(repo):
            return name
    pytest.skip(f"the cluster's node has {runtime_image} only by a tag Kubernetes always pulls: load it by "
                f"its content tag too: bash ../shared/k8s/cluster.sh load-image {repo}:<tag> "
                f"(docker images {repo})")
