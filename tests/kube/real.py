"""The real cluster of ../shared/k8s for tests marked `kube`: its kubeconfig, a skip with the
reason where it cannot be reached (not up, or the tests do not run inside its network namespace:
`cluster.sh exec pytest -m kube ...`), and a namespace of the test's own, deleted after it."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

K8S_DIR = Path(os.environ.get("MINIKF_K8S_DIR", f"{os.environ.get('TMPDIR', '/tmp')}/minikf-k8s"))
KUBECONFIG = Path(os.environ.get("MINIKF_K8S_KUBECONFIG", K8S_DIR / "kubeconfig"))
MANAGED = "app.kubernetes.io/managed-by=minikf"


def unreachable() -> str | None:
    """Why the cluster cannot be used from here, or None."""
    if not KUBECONFIG.is_file():
        return f"no cluster kubeconfig at {KUBECONFIG} (bash ../shared/k8s/cluster.sh up)"
    from minikf.kube.client import connect
    from minikf.runtime.errors import MinikfError

    try:
        connect(str(KUBECONFIG), timeout_s=3).close()
    except MinikfError as exc:
        return (f"the cluster's API server cannot be reached ({exc.message}); run the tests inside "
                f"its network namespace: bash ../shared/k8s/cluster.sh exec pytest -m kube")
    return None


@pytest.fixture(scope="module")
def kube_namespace():
    """A fresh namespace; at the end, proof that the tests left none of minikf's objects in it."""
    why = unreachable()
    if why:
        pytest.skip(why)
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(KUBECONFIG))
    core = client.CoreV1Api(api_client)
    name = f"minikf-test-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
        assert leftovers(api_client, name) == [], "objects left in the test namespace"
    finally:
        core.delete_namespace(name)
        api_client.close()


def leftovers(api_client, namespace: str, wait_s: float = 60) -> list[str]:
    """minikf's objects still in `namespace` after up to `wait_s` (pods go in the background)."""
    from kubernetes import client

    core, batch, apps = (client.CoreV1Api(api_client), client.BatchV1Api(api_client),
                         client.AppsV1Api(api_client))
    listers = {"pod": core.list_namespaced_pod, "job": batch.list_namespaced_job,
               "deployment": apps.list_namespaced_deployment, "service": core.list_namespaced_service,
               "configmap": core.list_namespaced_config_map, "secret": core.list_namespaced_secret}
    deadline = time.monotonic() + wait_s
    while True:
        left = [f"{kind}/{item.metadata.name}" for kind, lister in listers.items()
                for item in lister(namespace, label_selector=MANAGED).items]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1)
