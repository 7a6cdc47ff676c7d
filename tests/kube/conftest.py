"""The fake API server (fake_apiserver.py) runs no controller Deployments, so the platform's
discovery would choose the core flavor there; the tests of the Kubeflow paths force it."""

import pytest


@pytest.fixture(autouse=True)
def kubeflow_flavor(monkeypatch):
    monkeypatch.setenv("MINIKF_KUBE_FLAVOR", "kubeflow")
