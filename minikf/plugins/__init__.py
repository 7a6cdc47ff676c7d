"""The registries of platforms and step kinds: every one is named here or added by a plugin.

Built-ins are listed explicitly below ("module:attribute" strings, imported only when used); an
outside package adds its own with `PLATFORMS.register(...)` / `STEP_KINDS.register(...)` or an
entry point in the group `minikf.platforms` / `minikf.steps`. A platform is a subclass of
`minikf.platforms.base.Platform`; a step kind is a `minikf.steps.base.StepKind`.
"""

from __future__ import annotations

from minikf.plugins.registry import Registry

PLATFORMS = Registry("platform", "minikf.platforms", {
    "local": "minikf.platforms.local:LocalPlatform",
    "docker": "minikf.platforms.docker:DockerPlatform",
    "kubernetes": "minikf.platforms.kubernetes:KubernetesPlatform",
})

STEP_KINDS = Registry("step kind", "minikf.steps", {
    name: f"minikf.steps.{name}:KIND" for name in (
        "access", "command", "download", "evaluate", "lineage", "notebook", "notebook_server",
        "pipeline", "predict", "preprocess", "profile_api", "profile_run", "profiles", "serve",
        "service", "snapshot", "train", "tune",
    )
})

__all__ = ["PLATFORMS", "STEP_KINDS", "Registry"]
