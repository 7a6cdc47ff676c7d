"""Versions of what ran, so a report says exactly what was validated."""

from __future__ import annotations

import platform as host_platform
from importlib import metadata

DISTRIBUTIONS = ("minikf", "kfp", "kserve", "torch", "onnxruntime", "numpy", "optuna", "pydantic")


def versions() -> dict[str, str]:
    """Python and the installed versions of minikf and what it drives."""
    found = {"python": host_platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found
