"""The embedded default: every step runs as a subprocess on this host."""

from __future__ import annotations

import os
import platform as host
from dataclasses import dataclass, field


@dataclass
class LocalPlatform:
    name: str = "local"
    # Only what is implemented and tested on this platform today.
    capabilities: frozenset[str] = field(default_factory=lambda: frozenset({"pipelines"}))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "capabilities": sorted(self.capabilities),
            "host": host.node(),
            "cpus": os.cpu_count(),
            "python": host.python_version(),
        }

    def missing(self, required: list[str]) -> list[str]:
        return sorted(set(required) - self.capabilities)
