"""Platforms: one module each behind the `Platform` base class (base.py), registered by name in
`minikf.plugins.PLATFORMS` (built-ins there, outside ones by entry point or `register`)."""

from __future__ import annotations

from minikf.platforms.base import Platform, ServeRequest, TrainRequest
from minikf.plugins import PLATFORMS
from minikf.runtime.errors import MinikfError


def get_platform(name: str, **options) -> Platform:
    """The platform called `name`, built with `options` (e.g. kubeconfig, namespace)."""
    cls = PLATFORMS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Platform)):
        raise MinikfError(f"platform {name!r} is registered as {cls!r}, which is not a "
                          f"minikf.platforms.base.Platform subclass", exit_code=2)
    return cls(**options)


__all__ = ["Platform", "ServeRequest", "TrainRequest", "get_platform"]
