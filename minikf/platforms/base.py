"""The one small interface every platform implements."""

from __future__ import annotations

from typing import Protocol


class Platform(Protocol):
    """A driver that provides capabilities (pipelines, training, serving, ...)."""

    name: str
    capabilities: frozenset[str]

    def describe(self) -> dict:
        """What this platform is, for the results bundle."""
        ...

    def launch(self, argv: list[str], env: dict[str, str], log_path, resources):
        """Start one workload process (a training worker, a server); tracked by `resources`.

        Returns a handle with `poll()`, `wait()` and `returncode` like subprocess.Popen.
        """
        ...

    def missing(self, required: list[str]) -> list[str]:
        """The required capabilities this platform lacks."""
        ...
