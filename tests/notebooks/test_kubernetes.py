"""The Profile and Notebook CRs for a cluster, checked against the kubernetes client's models.

No Kubernetes API server can run here, so these check the objects as built; nothing is applied.
"""

from __future__ import annotations

import pytest

from minikf.kube.objects import InvalidResource, check_openapi
from minikf.notebooks.kubernetes import notebook_cr, profile_cr
from minikf.profiles.store import Profile, Quota


@pytest.fixture
def alice() -> Profile:
    return Profile(name="alice", quota=Quota(cpus=1, memory_mb=2048, max_runs=1))


def test_profile_cr_carries_the_quota(alice):
    cr = profile_cr(alice, "alice@example.com")
    assert (cr["apiVersion"], cr["kind"], cr["metadata"]["name"]) == ("kubeflow.org/v1", "Profile", "alice")
    assert cr["spec"]["owner"] == {"kind": "User", "name": "alice@example.com"}
    hard = cr["spec"]["resourceQuotaSpec"]["hard"]
    assert hard["limits.cpu"] == "1" and hard["limits.memory"] == "2048Mi"
    assert hard["count/pytorchjobs.kubeflow.org"] == "1"


def test_notebook_cr_in_the_users_namespace(alice):
    cr = notebook_cr(alice, "My_Notebook")
    assert cr["kind"] == "Notebook" and cr["metadata"]["namespace"] == "alice"
    container = cr["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == cr["metadata"]["name"] == "my-notebook"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2048Mi"}
    assert container["securityContext"]["runAsNonRoot"] is True
    check_openapi(cr["spec"]["template"]["spec"], "V1PodSpec")


def test_the_pod_check_refuses_a_misspelt_field(alice):
    pod = notebook_cr(alice)["spec"]["template"]["spec"]
    pod["containers"][0]["resource"] = pod["containers"][0].pop("resources")
    with pytest.raises(InvalidResource):
        check_openapi(pod, "V1PodSpec")
