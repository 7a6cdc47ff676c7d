import os

import pytest


@pytest.fixture(autouse=True)
def _minikf_home_in_tmp(tmp_path_factory, monkeypatch):
    """Live-run records (and the reapers' log) of the journeys go to a throwaway home."""
    if "MINIKF_HOME" not in os.environ:
        monkeypatch.setenv("MINIKF_HOME", str(tmp_path_factory.getbasetemp() / "minikf-home"))
