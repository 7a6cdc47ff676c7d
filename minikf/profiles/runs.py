"""Runs owned by a profile: quota-checked, results and artifacts in the profile's runs dir."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minikf.platforms.base import Command, Platform, UserLimits
from minikf.profiles.quota import check_workers, limited_argv, run_slot
from minikf.profiles.store import Profile
from minikf.runtime.processes import ProcessHandle, RunResources


def user_limits(profile: Profile) -> UserLimits:
    return UserLimits(user=profile.name, cpus=profile.quota.cpus,
                      memory_mb=profile.quota.memory_mb, home=profile.dir)


@dataclass
class ProfilePlatform(Platform):
    """Wraps a platform so every workload process it launches runs under the profile's quota:
    enforced by the platform where it can (docker: each container's cgroup), else by rlimits
    around each process (minikf.profiles.limits)."""

    inner: Platform
    profile: Profile
    outer: RunResources | None = None
    """A run's resources that should also stop these processes (a run started from a step)."""
    held: Platform | None = field(default=None, init=False, repr=False)
    """The inner platform holding the profile's workloads to its quota itself, if it can."""

    def __post_init__(self) -> None:
        self.held = self.inner.limited(user_limits(self.profile))

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[str]:
        return self.inner.capabilities

    def describe(self) -> dict:
        return {**(self.held or self.inner).describe(), "profile": self.profile.name,
                "quota": self.profile.quota.model_dump(),
                "quota_enforced_by": self.inner.name if self.held else "rlimits"}

    def missing(self, required: list[str]) -> list[str]:
        return self.inner.missing(required)

    def prewarm(self, module: str, resources: RunResources, scratch: Path) -> None:
        """Nothing: a warm parent would run outside the profile's quota."""

    def cpu_quota(self) -> float | None:
        """The profile's CPU quota: a training job is sized within it."""
        return float(self.profile.quota.cpus)

    def quota_argv(self, argv: list[str]) -> list[str]:
        """argv under the profile's quota (unchanged where the platform holds it)."""
        return argv if self.held else limited_argv(self.profile, argv)

    def command_argv(self, command: Command, resources: RunResources) -> list[str]:
        if self.held:
            return self.held.command_argv(command, resources)
        wrapped = Command(limited_argv(self.profile, command.argv), command.env, command.cwd,
                          command.paths)
        return self.inner.command_argv(wrapped, resources)

    def launch(self, argv: list[str], env: dict[str, str], log_path: Path,
               resources: RunResources) -> ProcessHandle:
        target = self.held or self.inner
        proc = target.launch(self.quota_argv(argv), env=env, log_path=log_path,
                             resources=resources)
        if self.outer is not None:  # the outer step's timeout or Ctrl-C stops it too
            self.outer.adopt(proc)
        return proc

    def shared_memory_dir(self, resources: RunResources) -> Path | None:
        """As the platform that runs the workers says (a quota's cores are kept: each rank pins
        itself within its own affinity)."""
        return (self.held or self.inner).shared_memory_dir(resources)

    def close(self) -> None:
        self.inner.close()


def run_as(profile: Profile, scenario, platform: Platform, run_scenario: Callable[..., Any],
           params: dict | None = None, progress=None, outer: RunResources | None = None):
    """Run a scenario as `profile` with the engine's `run_scenario`: QuotaExceeded before
    anything starts when over quota.

    `outer`: the resources of a run this one is a step of, so stopping it stops this one."""
    merged = {**scenario.params, **(params or {})}
    if str(merged.get("workers", "auto")) != "auto":  # auto is sized within the quota
        check_workers(profile, int(merged["workers"]))
    run_dir_name = uuid.uuid4().hex[:12]
    with run_slot(profile, run_dir_name):
        results = Path(profile.runs_dir) / run_dir_name
        result = run_scenario(scenario, ProfilePlatform(platform, profile, outer), results,
                              params=params, progress=progress)
    return result, results
