"""Platforms, by name -> "module:Class", loaded lazily (as testinfra does with backends)."""

from __future__ import annotations

import importlib

from minikf.errors import MinikfError
from minikf.platforms.base import Platform

PLATFORMS = {
    "local": "minikf.platforms.local:LocalPlatform",
}
PLANNED = {"docker": "issue #4", "kubernetes": "issue #5"}


def get_platform(name: str, **options) -> Platform:
    if name in PLANNED:
        raise MinikfError(
            f"platform {name!r} is not implemented yet ({PLANNED[name]}); use --platform local",
            exit_code=2,
        )
    if name not in PLATFORMS:
        raise MinikfError(f"unknown platform {name!r}; known: {', '.join(PLATFORMS)}", exit_code=2)
    module, _, cls = PLATFORMS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
