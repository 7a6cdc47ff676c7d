"""The docker platform for tests that need it: skipped, with the reason, where no Docker Engine
answers or the images are not built for this source (CI builds them before the tests)."""

from __future__ import annotations

import pytest


def docker_platform_or_skip():
    from minikf.images import engine
    from minikf.runtime.errors import MinikfError

    reason = engine.available()
    if reason is not None:
        pytest.skip(f"no Docker Engine: {reason}")
    from minikf.platforms.docker import DockerPlatform

    platform = DockerPlatform()
    try:
        platform.check_images()
    except MinikfError as exc:
        pytest.skip(f"images not usable: {exc.message}")
    return platform
