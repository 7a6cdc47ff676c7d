"""Checks run before `minikf up` creates anything: the install failures users report most.

Each failed check is one line that says what to do. All checks run (a missing kind does not hide a
low inotify limit), then `require` raises one MinikfError listing every failure.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from minikf.appliance.components import KIND_MIN, KUBECTL_MIN, KUSTOMIZE_MIN, Component
from minikf.appliance.tools import INSTALL_HINTS, Tools, parse_version
from minikf.runtime.errors import MinikfError

# kind's "known issues" page: pods fail with "too many open files" below these.
INOTIFY_MIN = {"max_user_watches": 524288, "max_user_instances": 512}

# Requests + observed use per component (kubeflow/manifests' README table), plus the kind node itself.
_NEEDS_MILLICPU = {"istio": 750, "knative": 1450, "pipelines": 970, "kserve": 600, "katib": 13}
_NEEDS_MIB = {"istio": 2364, "knative": 1038, "pipelines": 3552, "kserve": 1200, "katib": 476,
              "notebooks": 340, "profiles": 130, "dashboard": 160, "cert-manager": 128}
_NODE_MILLICPU, _NODE_MIB, _NODE_DISK_GIB = 1000, 1500, 20  # control plane + node images


@dataclass(frozen=True)
class Check:
    """One preflight result: `fix` says what to do when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok" if self.ok else "FAIL"
        return f"{mark:4} {self.name}: {self.detail}" + ("" if self.ok else f"; {self.fix}")


@dataclass(frozen=True)
class Needs:
    cpus: int
    memory_gib: float
    disk_gib: float


def needs_for(components: list[Component]) -> Needs:
    """CPU, memory and disk the chosen components need on one node, rounded up."""
    names = {c.name for c in components}
    milli = _NODE_MILLICPU + sum(v for k, v in _NEEDS_MILLICPU.items() if k in names)
    mib = _NODE_MIB + sum(v for k, v in _NEEDS_MIB.items() if k in names)
    disk = _NODE_DISK_GIB + (10 if "pipelines" in names else 0) + (5 if "katib" in names else 0)
    return Needs(cpus=max(2, -(-milli // 1000)), memory_gib=round(mib / 1024 + 0.5, 1), disk_gib=disk)


def _mem_total_gib(proc: Path) -> float | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        return None
    return None


def check_resources(needs: Needs, disk_path: Path, proc: Path = Path("/proc")) -> list[Check]:
    cpus = os.cpu_count() or 0
    out = [Check("cpus", cpus >= needs.cpus, f"{cpus} CPUs, need {needs.cpus}",
                 "use a bigger machine or fewer --components")]
    mem = _mem_total_gib(proc)
    if mem is None:
        out.append(Check("memory", False, f"cannot read {proc / 'meminfo'}", "run on Linux"))
    else:
        out.append(Check("memory", mem >= needs.memory_gib,
                         f"{mem:.1f} GiB, need {needs.memory_gib:.1f} GiB",
                         "free memory, use a bigger machine or fewer --components"))
    where = disk_path
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free / 2**30
    out.append(Check("disk", free >= needs.disk_gib, f"{free:.0f} GiB free at {where}, need "
                     f"{needs.disk_gib:.0f} GiB", f"free space under {where} (node images and volumes)"))
    return out


def check_inotify(sysctl_dir: Path = Path("/proc/sys")) -> list[Check]:
    out = []
    for key, minimum in INOTIFY_MIN.items():
        path = sysctl_dir / "fs" / "inotify" / key
        try:
            value = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            out.append(Check(f"fs.inotify.{key}", False, f"cannot read {path}", "run on Linux"))
            continue
        out.append(Check(f"fs.inotify.{key}", value >= minimum, f"{value}, need >= {minimum}",
                         f"sudo sysctl -w fs.inotify.{key}={minimum} and put it in "
                         f"/etc/sysctl.d/99-minikf.conf (pods fail with 'too many open files' below it)"))
    return out


def _missing(tools: Tools, name: str) -> Check | None:
    if tools.which(name):
        return None
    return Check(name, False, "not found on PATH", INSTALL_HINTS.get(name, f"install {name}"))


def _version_check(name: str, found: tuple[int, int, int] | None, minimum: tuple[int, int, int],
                   fix: str) -> Check:
    want = ".".join(map(str, minimum))
    if found is None:
        return Check(name, False, "version unknown", fix)
    have = ".".join(map(str, found))
    return Check(name, found >= minimum, f"v{have}, need >= v{want}", fix)


def check_docker(tools: Tools) -> list[Check]:
    missing = _missing(tools, "docker")
    if missing:
        return [missing]
    result = tools.run("docker", "info", "--format", "{{.ServerVersion}}", timeout_s=30, check=False)
    if not result.ok or not result.stdout.strip():
        why = result.last_line() or "no answer"
        return [Check("docker engine", False, f"not running ({why[:120]})",
                      "start it (sudo systemctl start docker) and make sure your user may use it "
                      "(sudo usermod -aG docker $USER, then log in again)")]
    return [Check("docker engine", True, f"running, v{result.stdout.strip()}")]


def check_kubernetes_tools(tools: Tools) -> list[Check]:
    out = []
    missing = _missing(tools, "kind")
    out.append(missing or _version_check("kind", tools.version("kind", "version"), KIND_MIN,
                                         INSTALL_HINTS["kind"]))
    missing = _missing(tools, "kubectl")
    if missing:
        return out + [missing]
    result = tools.run("kubectl", "version", "--client", timeout_s=30, check=False)
    client = kustomize = None
    for line in result.stdout.splitlines():
        if line.startswith("Client Version"):
            client = parse_version(line)
        elif line.startswith("Kustomize Version"):
            kustomize = parse_version(line)
    out.append(_version_check("kubectl", client, KUBECTL_MIN, INSTALL_HINTS["kubectl"]))
    out.append(_version_check("kustomize (kubectl kustomize)", kustomize, KUSTOMIZE_MIN,
                              "Kubeflow's manifests need kustomize 5: install kubectl >= v1.27"))
    return out


def check_gpu(tools: Tools, nvidia_config: Path = Path("/etc/nvidia-container-runtime/config.toml")
              ) -> list[Check]:
    out = []
    missing = _missing(tools, "nvidia-smi")
    if missing:
        out.append(missing)
    else:
        result = tools.run("nvidia-smi", "-L", timeout_s=30, check=False)
        gpus = [line for line in result.stdout.splitlines() if line.startswith("GPU ")]
        out.append(Check("nvidia driver", result.ok and bool(gpus),
                         f"{len(gpus)} GPU(s)" if result.ok else f"nvidia-smi failed: {result.last_line()}",
                         "install or repair the NVIDIA driver until `nvidia-smi -L` lists your GPU"))
    missing = _missing(tools, "nvidia-ctk")
    out.append(missing or Check("nvidia container toolkit", True, "nvidia-ctk found"))
    try:
        text = nvidia_config.read_text()
    except OSError:
        text = ""
    setting = "accept-nvidia-visible-devices-as-volume-mounts"
    volume_mounts = any(line.replace(" ", "").startswith(f"{setting}=true") for line in text.splitlines())
    out.append(Check("nvidia runtime config", volume_mounts,
                     f"{setting} {'set' if volume_mounts else 'not set'} "
                     f"in {nvidia_config}",
                     f"sudo nvidia-ctk config --in-place --set {setting}=true"
                     f" (file {nvidia_config})"))
    if tools.which("docker"):
        result = tools.run("docker", "info", "--format", "{{.DefaultRuntime}}", timeout_s=30, check=False)
        runtime = result.stdout.strip() if result.ok else "unknown"
        out.append(Check("docker default runtime", runtime == "nvidia", runtime,
                         "sudo nvidia-ctk runtime configure --runtime=docker --set-as-default "
                         "&& sudo systemctl restart docker"))
    return out


def check_images(tools: Tools, images: list[str]) -> list[Check]:
    """Images to `kind load` must be in the local engine (kind does not pull them)."""
    out = []
    for image in images:
        found = tools.run("docker", "image", "inspect", "--format", "{{.Id}}", image, timeout_s=30,
                          check=False).ok
        out.append(Check(f"image {image}", found, "present locally" if found else "not in the local engine",
                         "build it first (the minikf images under images/ are built by minikf.images) "
                         "or drop it from --load-image"))
    return out


def kind_checks(tools: Tools, components: list[Component], gpus: bool, disk_path: Path,
                sysctl_dir: Path = Path("/proc/sys"), proc: Path = Path("/proc")) -> list[Check]:
    """Everything `minikf up --driver kind` needs, in the order a user would fix them."""
    checks = check_docker(tools) + check_kubernetes_tools(tools) + check_inotify(sysctl_dir)
    checks += check_resources(needs_for(components), disk_path, proc)
    if gpus:
        checks += check_gpu(tools)
    return checks


def require(checks: list[Check], what: str = "minikf up") -> None:
    """Raise one MinikfError listing each failed check on its own line; nothing has been created."""
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = "\n".join(f"  {c.name}: {c.detail}; {c.fix}" for c in failed)
        raise MinikfError(f"preflight for {what} failed, nothing was created:\n{lines}", 2)
