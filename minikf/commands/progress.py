"""kind-style progress: ' ✓ step' / ' ✗ step' per step; a spinner on a TTY, plain lines in CI."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from minikf.results import Status, StepResult


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.console = Console(stderr=True)
        self.live = sys.stderr.isatty() and not os.environ.get("CI") and not quiet
        self._status = None

    def __call__(self, name: str, result: StepResult | None) -> None:
        if result is None:
            if not self.live:
                return
            if self._status is None:
                self._status = self.console.status(f" {name} ...")
                self._status.start()
            else:
                self._status.update(f" {name} ...")
            return
        if self._status is not None:
            self._status.stop()
            self._status = None
        mark = Status(result.status).mark
        detail = f" ({result.duration_s:.1f}s)"
        if result.message:
            detail += f": {result.message}"
        line = f" {mark} {name}{detail}"
        if self.live:
            colour = {"passed": "green", "interrupted": "yellow"}.get(result.status, "red")
            self.console.print(f"[{colour}]{mark}[/{colour}] {name}{detail}", highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)
