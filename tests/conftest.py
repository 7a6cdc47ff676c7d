import os
from pathlib import Path

import pytest

from minikf.platforms.local import LocalPlatform


@pytest.fixture
def write_scenario(tmp_path: Path):
    def write(text: str, name: str = "s.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def local() -> LocalPlatform:
    return LocalPlatform()


@pytest.fixture(autouse=True)
def _lineage_store_in_tmp(tmp_path_factory, monkeypatch):
    """Runs made by tests record lineage in a throwaway store, not the user's ~/.minikf."""
    if "MINIKF_METADATA_DB" not in os.environ:
        monkeypatch.setenv("MINIKF_METADATA_DB", str(tmp_path_factory.getbasetemp() / "metadata.db"))


@pytest.fixture(autouse=True)
def _minikf_home_in_tmp(tmp_path_factory, monkeypatch):
    """Live-run records (and the reapers' log) of runs made by tests go to a throwaway home."""
    if "MINIKF_HOME" not in os.environ:
        monkeypatch.setenv("MINIKF_HOME", str(tmp_path_factory.getbasetemp() / "minikf-home"))


@pytest.fixture(scope="session")
def docker_platform():
    """The docker platform with its images checked (tests/containers.py)."""
    from tests.containers import docker_platform_or_skip

    platform = docker_platform_or_skip()
    yield platform
    platform.close()


# The real cluster's fixtures (real_cluster, module_namespace, kube_ns, runtime_image) for the
# tests marked `kube`.
pytest_plugins = ("tests.kube.real_cluster",)
