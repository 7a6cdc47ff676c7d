"""The platform contract: one base class, every hook with a default, typed everywhere.

A platform says *how* a workload runs (processes on this host, containers, a cluster); step kinds
say *what* runs and never ask which platform they are on. A new platform is one module with a
subclass of `Platform`, registered in `minikf.plugins.PLATFORMS` (or by an entry point).

The hooks, in the order a journey meets them:
- `missing(required)`: the capabilities a scenario needs that this platform lacks (it is then
  skipped with the reason); `describe()`: what the platform is, for the results;
- `prewarm(module, resources, scratch)`: called when a run starts for each module a step kind's
  processes will run; a platform that can import them ahead (local) does;
- `launch(argv, env, log_path, resources)`: start one workload process; returns a
  `ProcessHandle` tracked by `resources`; `launch_driver(...)`: where a pipeline's driver runs
  (by default the same as `launch`); `quota_argv(argv)`: argv wrapped for processes started
  without `launch`, by default unchanged; `command_argv(command, resources)`: the command line
  for a process a library starts itself (nbclient's Jupyter kernel), run where workloads run;
- `limited(limits)`: this platform with every workload held to a user's limits by the platform
  itself (docker: cgroups, the user's own dir mounted), or None where it cannot (a profile then
  wraps each process in rlimits);
- `plan_workers(request)`: how many workers a training job with `request.workers` (None:
  `auto`) runs, and why; by default sized from this host's free cores (cores.py), within
  `cpu_quota()` (a user's quota where the platform holds one);
- `run_training(request, resources, status)`: one job of N workers that leaves model/ and
  metrics.jsonl in `request.out`; by default N `launch`ed worker processes (jobs.py);
- `serve_model(request, resources, status)`: a served model's local URL; by default the model
  server `launch`ed and polled until ready;
- `close()`: release connections when the platform is done with;
- `reap(details)` (a classmethod): remove what a killed run left (containers, cluster objects),
  from what the run noted in its live record.
Hooks raise StepFailed or another MinikfError with the message the user sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from minikf.runtime.errors import StepFailed
from minikf.runtime.processes import ProcessHandle, RunResources
from minikf.workload.contract import make_shm_dir

StatusHook = Callable[[str], None]


@dataclass
class TrainRequest:
    """One training job as the train step asks for it: the journey's hyperparameters, where the
    data is on this host (`data_dir`, preprocessed) or where a cluster fetches it from
    (`mirrors`, `sample`), and where model/ and metrics.jsonl must end up (`out`)."""

    name: str
    workers: int | None
    """How many workers: a count, or None (`auto`) until `Platform.plan_workers` has chosen."""
    epochs: int
    batch_size: int
    """The job's batch: each step's images over all workers (each takes its share)."""
    lr: float
    data_dir: Path
    out: Path
    log_path: Path
    timeout_s: float
    mirrors: list[str] = field(default_factory=list)
    sample: bool = False
    export_onnx: bool = True
    schedule: str = "constant"
    """The learning rate's course: constant, or onecycle (minikf/workload/recipe.py)."""
    augment: bool = False
    """Random flips and shifts of the training images (recipe.py)."""
    shares: str = "speed"
    """How ranks on one host share each step: `speed` (in proportion to how fast each has been)
    or `even` (the same split, so the same bits, every run); minikf/workload/replicas.py."""


@dataclass
class ServeRequest:
    """One model to serve: KServe V1 and V2 behind `token`, on `port` where the platform serves
    on this host."""

    name: str
    model_dir: Path
    token: str
    port: int
    log_path: Path
    timeout_s: float


@dataclass(frozen=True)
class UserLimits:
    """What one user's workloads are held to (a profile's quota): whole CPU cores, MiB of memory,
    and the user's own dir, the only part of a run's dir that their workloads may see."""

    user: str
    cpus: int
    memory_mb: int
    home: Path


@dataclass
class Command:
    """A process that a library starts from a command line (nbclient's Jupyter kernel).

    `env` names the variables it needs; the library hands them to the process it starts, and a
    platform that runs it elsewhere passes them through by name (never on a command line).
    `paths`: host paths it must reach besides those on its command line and `cwd`."""

    argv: list[str]
    env: list[str] = field(default_factory=list)
    cwd: Path | None = None
    paths: list[Path] = field(default_factory=list)


if TYPE_CHECKING:
    from minikf.platforms.cores import CpuMeter, WorkerPlan


def no_status(text: str) -> None:
    """The default status hook: nothing shown."""


class Platform:
    """A driver that provides capabilities (pipelines, training, serving, ...)."""

    name: str = ""
    capabilities: frozenset[str] = frozenset()

    def describe(self) -> dict:
        """What this platform is, for the results bundle."""
        return {"name": self.name, "capabilities": sorted(self.capabilities)}

    def missing(self, required: list[str]) -> list[str]:
        """The required capabilities this platform lacks, each with the reason."""
        return sorted(set(required) - self.capabilities)

    def prewarm(self, module: str, resources: RunResources, scratch: Path) -> None:
        """Import `module` ahead where this platform can; by default nothing."""

    def cpu_meter(self) -> CpuMeter:
        """What samples this host's CPU use by others between a run's start (`mark()`, where the
        platform calls it) and a training job's plan; one per platform object."""
        from minikf.platforms.cores import CpuMeter

        meter = self.__dict__.get("_cpu_meter")
        if meter is None:
            meter = self.__dict__["_cpu_meter"] = CpuMeter()
        return meter

    def cpu_quota(self) -> float | None:
        """The cores a user's workloads may use here, where a quota holds them; by default none."""
        return None

    def plan_workers(self, request: TrainRequest) -> WorkerPlan:
        """How many workers `request` runs and why: by default on this host, an exact count as
        asked, `auto` (None) as many as its free cores allow (cores.py)."""
        from minikf.platforms.cores import plan_workers

        cores = self.cpu_meter().cores(self.cpu_quota())
        return plan_workers(request.workers, cores, request.batch_size)

    def launch(self, argv: list[str], env: dict[str, str], log_path: Path,
               resources: RunResources) -> ProcessHandle:
        """Start one workload process, tracked by `resources`."""
        raise StepFailed(f"the {self.name} platform does not start processes "
                         f"({' '.join(argv[:3])} ...)")

    def shared_memory_dir(self, resources: RunResources) -> Path | None:
        """A directory on a tmpfs that every worker of a job this platform launches can map,
        owned by `resources`: the workers then sum gradients through shared memory and share
        each step by speed (minikf/workload/replicas.py). None (the default) where they may
        not share a host's memory: they use DDP over gloo or nccl."""
        return None

    def launch_driver(self, argv: list[str], env: dict[str, str], log_path: Path,
                      resources: RunResources) -> ProcessHandle:
        """Start a pipeline's driver (which runs the pipeline's tasks); by default as `launch`."""
        return self.launch(argv, env, log_path, resources)

    def quota_argv(self, argv: list[str]) -> list[str]:
        """argv as it must run for processes not started by `launch`; by default unchanged."""
        return argv

    def command_argv(self, command: Command, resources: RunResources) -> list[str]:
        """The command line that runs `command` where this platform runs workloads, for a
        library to start; by default `quota_argv(command.argv)`, a process on this host."""
        return self.quota_argv(command.argv)

    def limited(self, limits: UserLimits) -> Platform | None:
        """This platform with every workload it starts held to `limits` by the platform itself;
        None (the default) where it cannot: a profile then wraps each process in rlimits."""
        return None

    def run_training(self, request: TrainRequest, resources: RunResources,
                     status: StatusHook = no_status) -> None:
        """Run one data-parallel job; by default `request.workers` launched worker processes."""
        from minikf.platforms.jobs import run_process_job

        run_process_job(self, request, resources)

    def serve_model(self, request: ServeRequest, resources: RunResources,
                    status: StatusHook = no_status) -> str:
        """Serve a model; by default the model server launched here. Returns its local URL."""
        from minikf.platforms.serving import serve_process

        return serve_process(self, request, resources)

    def close(self) -> None:
        """Release what the platform holds (connections); by default nothing."""

    @classmethod
    def reap(cls, details: dict) -> list[str]:
        """Remove what a run that was killed left on this platform beyond this host's processes
        (containers, cluster objects): `details` is what the run noted with
        `RunResources.note_leftovers`. One line per thing removed, `could not ...` for what
        failed. Called by the run's reaper and by `minikf clean`; by default nothing."""
        return []


def host_shared_memory_dir(resources: RunResources) -> Path | None:
    """For platforms whose workers all run on this host: a fresh directory on its tmpfs, removed
    with `resources` (also by `minikf clean` after a killed run); None where there is none."""
    path = make_shm_dir()
    return resources.add_temp_dir(path) if path else None

