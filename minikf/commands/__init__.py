"""The CLI's commands, one module per area, each with `register(app: typer.Typer)`. They are
listed here explicitly, in the order `minikf --help` shows them; other modules in this package
(common, progress) are helpers. Heavy imports stay inside the commands, so that
`minikf --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = ("scenarios", "run", "serve", "pipelines", "version", "appliance", "bench",
                   "images", "clean", "kube", "notebooks", "profiles", "runs", "snapshot", "ui")


def register_all(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(app)
