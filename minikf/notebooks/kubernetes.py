"""A minikf profile on a Kubeflow cluster: a Profile (the user's namespace, owner and
ResourceQuota from the minikf quota) and a Notebook CR in that namespace, from which
Kubeflow's notebook controller makes the StatefulSet and Service.

Built as plain dicts for CustomObjectsApi; the quota and the pod template are checked
against the kubernetes client's own models (a misspelt field is an error here, not on a
vendor's cluster). On a cluster, Kubeflow's auth proxy and each namespace's RBAC do what
the token does on local: another user's identity gets 403.
"""

from __future__ import annotations

import os

from minikf.kube.objects import check_openapi, dns_name
from minikf.profiles.store import Profile

# The Jupyter web app's default image at the pinned Kubeflow release (tests/appliance/test_upstream.py).
NOTEBOOK_IMAGE = os.environ.get(
    "MINIKF_NOTEBOOK_IMAGE", "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0")
NOTEBOOK_PORT = 8888


def quota_spec(profile: Profile) -> dict:
    """The namespace's ResourceQuota: the user's cores and memory, and `max_runs` jobs."""
    quota = profile.quota
    spec = {"hard": {
        "requests.cpu": str(quota.cpus), "limits.cpu": str(quota.cpus),
        "requests.memory": f"{quota.memory_mb}Mi", "limits.memory": f"{quota.memory_mb}Mi",
        "count/pytorchjobs.kubeflow.org": str(quota.max_runs),
        "count/trainjobs.trainer.kubeflow.org": str(quota.max_runs),
    }}
    check_openapi(spec, "V1ResourceQuotaSpec")
    return spec


def profile_cr(profile: Profile, owner: str) -> dict:
    """A kubeflow.org/v1 Profile: namespace named after the user, owned by `owner` (an email)."""
    return {
        "apiVersion": "kubeflow.org/v1", "kind": "Profile",
        "metadata": {"name": dns_name(profile.name)},
        "spec": {"owner": {"kind": "User", "name": owner},
                 "resourceQuotaSpec": quota_spec(profile)},
    }


def notebook_cr(profile: Profile, name: str = "notebook", image: str = NOTEBOOK_IMAGE) -> dict:
    """A kubeflow.org/v1 Notebook in the user's namespace, sized by the user's quota."""
    name = dns_name(name)
    size = {"cpu": str(profile.quota.cpus), "memory": f"{profile.quota.memory_mb}Mi"}
    pod = {
        "serviceAccountName": "default-editor",
        "containers": [{
            "name": name, "image": image,  # the controller wants the container named so
            "ports": [{"containerPort": NOTEBOOK_PORT, "name": "notebook-port", "protocol": "TCP"}],
            "resources": {"requests": dict(size), "limits": dict(size)},
            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "runAsUser": 1000},
        }],
    }
    check_openapi(pod, "V1PodSpec")
    return {
        "apiVersion": "kubeflow.org/v1", "kind": "Notebook",
        "metadata": {"name": name, "namespace": dns_name(profile.name),
                     "labels": {"app": name, "app.kubernetes.io/managed-by": "minikf"}},
        "spec": {"template": {"spec": pod}},
    }
