"""Platforms, by name -> "module:Class", loaded lazily (as testinfra does with backends).

A platform is one module here behind the `Platform` interface in base.py.
"""

from __future__ import annotations

import importlib

from minikf.errors import MinikfError
from minikf.platforms.base import Platform

PLATFORMS = {
    "local": "minikf.platforms.local:LocalPlatform",
    "docker": "minikf.platforms.docker:DockerPlatform",
    "kubernetes": "minikf.platforms.kubernetes:KubernetesPlatform",
}


def get_platform(name: str, **options) -> Platform:
    """The platform called `name`, built with `options` (e.g. kubeconfig, namespace)."""
    if name not in PLATFORMS:
        raise MinikfError(f"unknown platform {name!r}; known: {', '.join(PLATFORMS)}", exit_code=2)
    module, _, cls = PLATFORMS[name].partition(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise MinikfError(f"platform {name!r} is not implemented yet; use --platform local", 2) from None
    return getattr(loaded, cls)(**options)
