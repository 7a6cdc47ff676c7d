"""A registry of named plugins, loaded lazily (tox's register.py, testinfra's backend table).

Each entry maps a name to "module:attribute" (imported on first use, so the CLI's start stays
fast and a registry never imports what it lists) or to the object itself. Built-in entries and
outside ones go through the same path: `register()` from code, or an entry point in the
registry's group, which `pip install`ing a package adds:

    [project.entry-points."minikf.platforms"]
    toy = "toy_minikf.platform:ToyPlatform"
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from minikf.runtime.errors import MinikfError


class Registry:
    """Names -> plugins of one kind ("platform", "step kind"); unknown names are one clear error."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str]) -> None:
        self.kind, self.group = kind, group
        self._targets: dict[str, str | Any] = dict(builtins)
        self._loaded: dict[str, Any] = {}
        self._entry_points_read = False
        self._lock = threading.Lock()

    def register(self, name: str, target: str | Any, replace: bool = False) -> None:
        """Add `name` -> target ("module:attribute" or the object). A name taken already is
        an error unless `replace`, so that two plugins cannot silently shadow each other."""
        self._read_entry_points()
        with self._lock:
            if name in self._targets and not replace:
                raise MinikfError(f"{self.kind} {name!r} is registered already "
                                  f"({self._describe(self._targets[name])})", exit_code=2)
            self._targets[name] = target
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._targets.pop(name, None)
            self._loaded.pop(name, None)

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def get(self, name: str) -> Any:
        """The plugin called `name`, imported on first use."""
        self._read_entry_points()
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            if name not in self._targets:
                raise MinikfError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._targets))}",
                                  exit_code=2)
            target = self._targets[name]
        loaded = _load(target) if isinstance(target, str) else target
        with self._lock:
            self._loaded[name] = loaded
        return loaded

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        found = _entry_points(self.group)
        with self._lock:
            if self._entry_points_read:
                return
            for name, value in found:
                self._targets.setdefault(name, value)  # a built-in name is never replaced this way
            self._entry_points_read = True

    def refresh(self) -> None:
        """Read the entry points again (after installing a plugin in this process)."""
        with self._lock:
            self._entry_points_read = False

    @staticmethod
    def _describe(target: str | Any) -> str:
        return target if isinstance(target, str) else f"{type(target).__name__} object"


def _entry_points(group: str) -> Iterable[tuple[str, str]]:
    return [(ep.name, ep.value) for ep in metadata.entry_points(group=group)]


def _load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    loaded = importlib.import_module(module)
    for part in attribute.split(".") if attribute else ():
        loaded = getattr(loaded, part)
    return loaded
