"""The kind driver: preflight, cluster from the generated config, components, endpoints."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from minikf.appliance import kindconfig, preflight
from minikf.appliance.components import KIND_NODE_IMAGE, KUBEFLOW_VERSION, Component, Mirrors
from minikf.appliance.imageload import LoadTarget, load_images
from minikf.appliance.install import Installer
from minikf.appliance.state import ApplianceState, home
from minikf.appliance.tools import Tools

# Inside the node after creation, as NVIDIA's nvkind does: the toolkit that provides
# nvidia-container-runtime, made containerd's default runtime. MINIKF_MIRROR_NVIDIA_APT replaces the
# repository for air-gapped sites.
NVIDIA_APT = "https://nvidia.github.io/libnvidia-container"
GPU_NODE_SETUP = [
    "umount -R /proc/driver/nvidia || true",
    "apt-get update -qq && apt-get install -y -qq curl gpg",
    "curl -fsSL {repo}/gpgkey | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit.gpg",
    "echo \"deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit.gpg] {repo}/stable/deb/"
    "$(dpkg --print-architecture) /\" > /etc/apt/sources.list.d/nvidia-container-toolkit.list",
    "apt-get update -qq && apt-get install -y -qq nvidia-container-toolkit",
    "nvidia-ctk runtime configure --runtime=containerd --set-as-default --config-source=command",
    "systemctl restart containerd",
]


def endpoints(settings: kindconfig.KindSettings, components: list[Component]) -> dict[str, str]:
    names = {c.name for c in components}
    base = f"http://127.0.0.1:{settings.gateway_port}"
    out = {"kubeconfig": str(home(settings.name) / "kubeconfig")}
    if "istio" in names:
        out["gateway"] = base
    if "dashboard" in names:
        out["dashboard"] = f"{base}/ (user@example.com / 12341234: change it before sharing)"
    if "pipelines" in names:
        out["pipelines"] = f"{base}/pipeline"
    if "kserve" in names:
        out["kserve"] = f"{base} with Host: NAME.NAMESPACE.example.com"
    return out


@dataclass
class KindAppliance:
    settings: kindconfig.KindSettings
    components: list[Component]
    mirrors: Mirrors = field(default_factory=Mirrors)
    tools: Tools = field(default_factory=Tools)
    say: Callable[[str], None] = field(default=print)
    load_images: list[str] = field(default_factory=list)
    wait_timeout_s: int | None = None

    @property
    def dir(self) -> Path:
        return home(self.settings.name)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def node(self) -> str:
        return f"{self.settings.name}-control-plane"

    def preflight(self) -> list[preflight.Check]:
        disk = self.settings.data_dir or self.dir
        checks = preflight.kind_checks(self.tools, self.components, self.settings.gpus, disk)
        if self.load_images and self.tools.which("docker"):
            checks += preflight.check_images(self.tools, self.load_images)
        preflight.require(checks, f"minikf up --driver kind (cluster {self.settings.name})")
        return checks

    def exists(self) -> bool:
        result = self.tools.run("kind", "get", "clusters", timeout_s=60)
        return self.settings.name in result.stdout.split()

    def write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.settings.data_dir is not None:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "kind-config.yaml"
        path.write_text(kindconfig.render(self.settings))
        return path

    def up(self) -> dict[str, str]:
        for check in self.preflight():
            self.say(f" ✓ {check.name}: {check.detail}")
        config = self.write_config()
        name = self.settings.name
        if self.exists():
            self.say(f"cluster {name} exists: reusing it")
            self.tools.run("kind", "export", "kubeconfig", "--name", name,
                           "--kubeconfig", str(self.kubeconfig))
        else:
            self.say(f"creating kind cluster {name} ({KIND_NODE_IMAGE.split('@')[0]})")
            self.tools.run("kind", "create", "cluster", "--name", name, "--config", str(config),
                           "--kubeconfig", str(self.kubeconfig), "--wait", "180s", timeout_s=900)
        self.kubeconfig.chmod(0o600)
        if self.settings.gpus:
            self.setup_gpu_node()
        Installer(self.tools, self.kubeconfig, self.mirrors, self.dir / "diagnostics",
                  say=self.say, wait_timeout_s=self.wait_timeout_s).install(self.components)
        if any(c.name == "istio" for c in self.components):
            self.expose_gateway()
        if self.load_images:
            load_images(self.load_images, LoadTarget(kind_cluster=name), self.tools, self.say)
        found = endpoints(self.settings, self.components)
        ApplianceState(name=name, driver="kind", components=[c.name for c in self.components],
                       kubeconfig=str(self.kubeconfig), endpoints=found,
                       versions={"kubeflow": KUBEFLOW_VERSION, "node_image": self.settings.node_image}).save()
        return found

    def setup_gpu_node(self) -> None:
        import os

        repo = os.environ.get("MINIKF_MIRROR_NVIDIA_APT", NVIDIA_APT).rstrip("/")
        self.say("setting up the NVIDIA container toolkit inside the node")
        for command in GPU_NODE_SETUP:
            self.tools.run("docker", "exec", self.node, "bash", "-c", command.format(repo=repo),
                           timeout_s=900)

    def expose_gateway(self) -> None:
        """Make istio-ingressgateway's http2 port the NodePort kind maps to 127.0.0.1:gateway_port."""
        patch = {"spec": {"type": "NodePort",
                          "ports": [{"name": "http2", "port": 80, "targetPort": 8080,
                                     "nodePort": kindconfig.GATEWAY_NODE_PORT}]}}
        self.tools.run("kubectl", "--kubeconfig", str(self.kubeconfig), "-n", "istio-system", "patch",
                       "service", "istio-ingressgateway", "-p", json.dumps(patch), timeout_s=60)

    def down(self) -> None:
        """Delete the cluster (if there is one) and its files; the data directory stays."""
        if self.exists():
            self.tools.run("kind", "delete", "cluster", "--name", self.settings.name, timeout_s=600)
        for leftover in ("kubeconfig", "state.json", "kind-config.yaml"):
            (self.dir / leftover).unlink(missing_ok=True)
