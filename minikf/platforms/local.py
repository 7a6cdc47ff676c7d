"""The embedded default: every step runs as a subprocess on this host."""

from __future__ import annotations

import os
import platform as host
import threading
from dataclasses import dataclass, field
from pathlib import Path

from minikf.platforms.base import Platform, host_shared_memory_dir
from minikf.platforms.warm import WarmPool
from minikf.runtime.processes import ProcessHandle, RunResources


@dataclass
class LocalPlatform(Platform):
    name: str = "local"
    # Only what is implemented and tested on this platform today.
    capabilities: frozenset[str] = field(
        default_factory=lambda: frozenset({"pipelines", "training", "serving", "notebooks", "isolation",
                                   "metadata", "tuning"})
    )
    warm_start: bool = field(default_factory=lambda: os.environ.get("MINIKF_WARM_START", "1") != "0")
    """Import what later steps run when the run starts and fork their processes from there
    (warm.py). MINIKF_WARM_START=0 turns it off: every process starts cold."""
    _pools: dict[int, WarmPool] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "host": host.node(),
            "cpus": os.cpu_count(),
            "python": host.python_version(),
            "warm_start": self.warm_start,
        }

    def prewarm(self, module: str, resources: RunResources, scratch: Path) -> None:
        """Start an interpreter that imports `module` now; launches of `module` fork from it.
        The run starts: the window over which other processes' CPU use is sampled starts too."""
        self.cpu_meter().mark()
        if not self.warm_start:
            return
        with self._lock:
            pool = self._pools.get(id(resources))
            if pool is None:
                pool = self._pools[id(resources)] = WarmPool(scratch)
                resources.on_cleanup(lambda: self._drop_pool(resources))
        pool.start(module, resources)

    def _drop_pool(self, resources: RunResources) -> None:
        with self._lock:
            pool = self._pools.pop(id(resources), None)
        if pool is not None:
            pool.release()

    def launch(self, argv: list[str], env: dict[str, str], log_path: Path,
               resources: RunResources) -> ProcessHandle:
        """A subprocess in its own process group, with this host's environment plus `env`:
        a warm one started for this run when there is one, else a new one."""
        with self._lock:
            pool = self._pools.get(id(resources))
        warm = pool.take(argv, env, Path(log_path), resources) if pool else None
        return warm or resources.spawn(argv, log_path, env={**os.environ, **env})

    def shared_memory_dir(self, resources: RunResources) -> Path | None:
        """Every worker runs on this host: they may share a directory on its tmpfs."""
        return host_shared_memory_dir(resources)
