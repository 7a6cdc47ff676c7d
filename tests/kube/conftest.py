"""No Kubeflow controller Deployment runs on the shared real cluster (the stand-ins play the
operators from the test process) nor on the fake API server, so the platform's discovery would
choose the core flavor there; the tests of the Kubeflow paths force the kubeflow one."""

import pytest


@pytest.fixture(autouse=True)
def kubeflow_flavor(monkeypatch):
    monkeypatch.setenv("MINIKF_KUBE_FLAVOR", "kubeflow")
