"""The one small interface every platform implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class TrainRequest:
    """What the train step asks of a platform with `run_training`: the journey's hyperparameters
    and where the data comes from."""

    name: str
    workers: int
    epochs: int
    batch_size: int
    lr: float
    mirrors: list[str]
    sample: bool
    timeout_s: float


class Platform(Protocol):
    """A driver that provides capabilities (pipelines, training, serving, ...).

    Optional hooks, for platforms where a piece is one resource rather than processes (steps use
    them when present, `launch` otherwise):
    - `launch_driver(argv, env, log_path, resources)`: where a pipeline's driver runs;
    - `run_training(request: TrainRequest, resources, log_path, dest, status) -> Path`: one job of
      N workers that leaves model/ and metrics.jsonl in `dest`;
    - `serve_model(name, model_dir, token, resources, timeout_s, status) -> str`: a served model's
      local URL.
    They raise StepFailed or MinikfError with the message the user sees.
    - `prewarm(module, resources, scratch)`: called when a run starts, for each module a step kind
      names in WARM_MODULES; a platform that can do the module's imports ahead (local: a warm
      parent that `launch` then forks from, platforms/warm.py) does so.
    """

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
