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
