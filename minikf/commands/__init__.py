"""CLI commands, one module per area. Each module here has `register(app: typer.Typer)`, which adds
its commands or command group; minikf.cli calls every one. Keep heavy imports inside the commands,
so that `minikf --help` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}").register(app)
