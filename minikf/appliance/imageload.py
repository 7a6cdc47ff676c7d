"""Put minikf's images into a cluster's node, no registry: `kind load docker-image` for a kind
cluster (what `minikf up --driver kind` does), `cluster.sh load-image` for the shared single-node
cluster of ../shared/k8s. One code path for both: `load_images(images, target)`.

Pods then run them with imagePullPolicy IfNotPresent; an image missing from the node shows as
ErrImagePull/ImagePullBackOff in the platform's pod summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minikf.appliance.tools import Tools
from minikf.runtime.errors import MinikfError

IMAGES = ("minikf/runtime:latest", "minikf/server:latest")


@dataclass(frozen=True)
class LoadTarget:
    """Where images go: a kind cluster by name, or a cluster script with a `load-image` verb."""

    kind_cluster: str | None = None
    cluster_script: Path | None = None

    def __post_init__(self) -> None:
        if (self.kind_cluster is None) == (self.cluster_script is None):
            raise MinikfError("load images into one cluster: give --kind NAME or --cluster-script PATH", 2)
        if self.cluster_script is not None and not Path(self.cluster_script).is_file():
            raise MinikfError(f"cluster script {self.cluster_script} does not exist", 2)

    def command(self, images: list[str]) -> tuple[str, list[str]]:
        """(tool, arguments) that load `images` in one go: one `docker save` of them all, so the
        layers the runtime and server images share travel once."""
        if self.kind_cluster is not None:
            return "kind", ["load", "docker-image", *images, "--name", self.kind_cluster]
        return "bash", [str(self.cluster_script), "load-image", *images]

    def __str__(self) -> str:
        return f"kind cluster {self.kind_cluster}" if self.kind_cluster else f"{self.cluster_script}"


def load_images(images: list[str] | tuple[str, ...], target: LoadTarget, tools: Tools | None = None,
                say: Callable[[str], None] = print) -> None:
    """Load each image (it must be in the local Docker Engine) into `target`'s node."""
    tools = tools or Tools()
    found = tools.run("docker", "image", "inspect", "--format", "{{.Id}}", *images, check=False,
                      timeout_s=60)
    if found.returncode != 0:
        absent = [i for i in images if i not in found.stdout and i in (found.stderr or "")] or list(images)
        raise MinikfError(f"not in the local Docker Engine: {', '.join(absent)}; "
                          f"run `minikf images build` first", 1)
    say(f"loading {', '.join(images)} into {target}")
    tool, args = target.command(list(images))
    tools.run(tool, *args, timeout_s=1800)
