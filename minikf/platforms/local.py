"""The embedded default: every step runs as a subprocess on this host."""

from __future__ import annotations

import os
import platform as host
from dataclasses import dataclass, field


@dataclass
class LocalPlatform:
    name: str = "local"
    # Only what is implemented and tested on this platform today.
    capabilities: frozenset[str] = field(
        default_factory=lambda: frozenset({"pipelines", "training", "serving", "notebooks", "isolation",
                                   "metadata", "tuning"})
    )

    def describe(self) -> dict:
        return {
            "name": self.name,
            "capabilities": sorted(self.capabilities),
            "host": host.node(),
            "cpus": os.cpu_count(),
            "python": host.python_version(),
        }

    def launch(self, argv: list[str], env: dict[str, str], log_path, resources):
        """A subprocess in its own process group, with this host's environment plus `env`."""
        return resources.spawn(argv, log_path, env={**os.environ, **env})

    def missing(self, required: list[str]) -> list[str]:
        return sorted(set(required) - self.capabilities)
