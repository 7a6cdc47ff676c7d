"""The kind cluster config `minikf up --driver kind` writes (kind.x-k8s.io/v1alpha4).

The models mirror kind v0.27's config types (pkg/apis/config/v1alpha4/types.go) with unknown fields
forbidden, as kind's own strict YAML decoding does, so a typo is caught here and not by `kind create`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minikf.appliance.components import KIND_NODE_IMAGE
from minikf.runtime.errors import MinikfError

API_VERSION = "kind.x-k8s.io/v1alpha4"
GATEWAY_NODE_PORT = 30080  # istio-ingressgateway's http2 port is patched to this NodePort
LOCAL_PATH_DIR = "/var/local-path-provisioner"  # where kind's default StorageClass keeps volumes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Mount(_Strict):
    containerPath: str
    hostPath: str
    readOnly: bool | None = None
    selinuxRelabel: bool | None = None
    propagation: Literal["None", "HostToContainer", "Bidirectional"] | None = None


class PortMapping(_Strict):
    containerPort: int = Field(ge=1, le=65535)
    hostPort: int = Field(ge=-1, le=65535)
    listenAddress: str = "127.0.0.1"
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class PatchJSON6902(_Strict):
    group: str
    version: str
    kind: str
    patch: str


class Node(_Strict):
    role: Literal["control-plane", "worker"] = "control-plane"
    image: str | None = None
    labels: dict[str, str] | None = None
    extraMounts: list[Mount] | None = None
    extraPortMappings: list[PortMapping] | None = None
    kubeadmConfigPatches: list[str] | None = None
    kubeadmConfigPatchesJSON6902: list[PatchJSON6902] | None = None


class Networking(_Strict):
    ipFamily: Literal["ipv4", "ipv6", "dual"] | None = None
    apiServerPort: int | None = None
    apiServerAddress: str | None = None
    podSubnet: str | None = None
    serviceSubnet: str | None = None
    disableDefaultCNI: bool | None = None
    kubeProxyMode: Literal["iptables", "ipvs", "nftables", "none"] | None = None
    dnsSearch: list[str] | None = None


class Cluster(_Strict):
    kind: Literal["Cluster"] = "Cluster"
    apiVersion: Literal["kind.x-k8s.io/v1alpha4"] = API_VERSION
    name: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    nodes: list[Node] | None = None
    networking: Networking | None = None
    featureGates: dict[str, bool] | None = None
    runtimeConfig: dict[str, str] | None = None
    kubeadmConfigPatches: list[str] | None = None
    kubeadmConfigPatchesJSON6902: list[PatchJSON6902] | None = None
    containerdConfigPatches: list[str] | None = None
    containerdConfigPatchesJSON6902: list[str] | None = None


# Kubeflow's own kind instructions: a service-account issuer the in-cluster OIDC consumers accept.
_SA_ISSUER_PATCH = """kind: ClusterConfiguration
apiServer:
  extraArgs:
    "service-account-issuer": "https://kubernetes.default.svc"
    "service-account-signing-key-file": "/etc/kubernetes/pki/sa.key"
"""

# The nvidia runtime for containerd inside the node (nvidia-container-runtime is installed in the
# node after creation; see minikf.appliance.kind.GPU_NODE_SETUP).
_NVIDIA_CONTAINERD_PATCH = """[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
    BinaryName = "/usr/bin/nvidia-container-runtime"
"""


@dataclass
class KindSettings:
    """What a user chooses for the kind cluster."""

    name: str = "minikf"
    gateway_port: int = 8080  # http://127.0.0.1:PORT reaches the Istio ingress gateway
    api_server_port: int | None = None  # None: kind picks a free one
    listen_address: str = "127.0.0.1"  # 0.0.0.0 only inside a VM whose ports the host forwards
    data_dir: Path | None = None  # host directory that keeps PersistentVolumes across clusters
    gpus: bool = False
    node_image: str = KIND_NODE_IMAGE
    extra_mounts: list[tuple[str, str]] = field(default_factory=list)  # (host, container)


def build(settings: KindSettings) -> Cluster:
    """The Cluster model for these settings."""
    mounts: list[Mount] = []
    if settings.data_dir is not None:
        mounts.append(Mount(hostPath=str(settings.data_dir), containerPath=LOCAL_PATH_DIR))
    mounts += [Mount(hostPath=h, containerPath=c) for h, c in settings.extra_mounts]
    patches = None
    if settings.gpus:
        # NVIDIA's documented trick for GPUs in kind: with accept-nvidia-visible-devices-as-volume-mounts
        # set in the host's nvidia-container-runtime config and nvidia the default Docker runtime, this
        # mount makes the node container see every GPU.
        mounts.append(Mount(hostPath="/dev/null", containerPath="/var/run/nvidia-container-devices/all"))
        patches = [_NVIDIA_CONTAINERD_PATCH]
    node = Node(
        role="control-plane",
        image=settings.node_image,
        labels={"ingress-ready": "true", **({"nvidia.com/gpu.present": "true"} if settings.gpus else {})},
        extraMounts=mounts or None,
        extraPortMappings=[PortMapping(containerPort=GATEWAY_NODE_PORT, hostPort=settings.gateway_port,
                                       listenAddress=settings.listen_address, protocol="TCP")],
        kubeadmConfigPatches=[_SA_ISSUER_PATCH],
    )
    networking = Networking(apiServerAddress=settings.listen_address, apiServerPort=settings.api_server_port)
    return Cluster(name=settings.name, nodes=[node], networking=networking, containerdConfigPatches=patches)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the patches) as literal blocks, so the file reads like kind's docs."""


_Dumper.add_representer(
    str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def render(settings: KindSettings) -> str:
    """The config as YAML, without unset fields."""
    doc = build(settings).model_dump(exclude_none=True)
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False)


def load(text: str, where: str = "kind config") -> Cluster:
    """Parse and check a kind config; a problem is one line naming the field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MinikfError(f"{where}: not YAML: {str(exc).splitlines()[0]}", 2) from None
    try:
        return Cluster.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise MinikfError(f"{where}: {loc}: {err['msg']}", 2) from None
