"""The vagrant driver: a VM sized from vagrant/settings.yaml that runs the kind path inside it,
driven through python-vagrant. The kubeconfig comes back over `vagrant ssh` (not through a file the
provisioning leaves behind) with its server pointed at the host's forwarded port.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from minikf.appliance import preflight
from minikf.appliance.preflight import Check
from minikf.appliance.state import ApplianceState, home
from minikf.appliance.tools import Tools
from minikf.runtime.errors import MinikfError

ROOT = Path(__file__).resolve().parents[2]  # where the Vagrantfile is
SETTINGS = ROOT / "vagrant" / "settings.yaml"
PROVIDERS = ("libvirt", "virtualbox")
GUEST_KUBECONFIG = "/home/vagrant/.minikf/appliance/minikf/kubeconfig"


@dataclass
class VagrantSettings:
    box: str = "debian/bookworm64"
    hostname: str = "minikf"
    cpus: int = 6
    memory_mib: int = 16384
    data_disk_gib: int = 100
    data_disk_path: str = ".vagrant-data/minikf-data"
    gateway_port: int = 8080
    api_port: int = 6443
    components: str = ""
    gpu_pci: list[str] = field(default_factory=list)
    minikf_src: str = "/vagrant"

    @classmethod
    def load(cls, path: Path = SETTINGS, environ: dict[str, str] | None = None) -> VagrantSettings:
        """The settings file, then MINIKF_VM_<KEY> overrides, as the Vagrantfile reads them."""
        environ = dict(os.environ) if environ is None else environ
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MinikfError(f"{path}: cannot read settings: {str(exc).splitlines()[0]}", 2) from None
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise MinikfError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: "
                              f"{', '.join(cls.__dataclass_fields__)}", 2)
        for key in cls.__dataclass_fields__:
            value = environ.get(f"MINIKF_VM_{key.upper()}")
            if value is not None:
                data[key] = [v for v in value.split(",") if v] if key == "gpu_pci" else value
        try:
            settings = cls(**data)
            for key in ("cpus", "memory_mib", "data_disk_gib", "gateway_port", "api_port"):
                setattr(settings, key, int(getattr(settings, key)))
        except (TypeError, ValueError) as exc:
            raise MinikfError(f"{path}: {exc}", 2) from None
        return settings


def vagrant_checks(tools: Tools, provider: str, settings: VagrantSettings, gpus: bool) -> list[Check]:
    """What the host needs before `vagrant up`: the tools, the provider, room for the VM."""
    out = []
    if provider not in PROVIDERS:
        return [Check("provider", False, f"{provider!r} is not supported",
                      f"use one of {', '.join(PROVIDERS)}")]
    if not tools.which("vagrant"):
        out.append(Check("vagrant", False, "not found on PATH",
                         "install Vagrant (Debian: apt-get install vagrant)"))
    elif provider == "libvirt":
        plugins = tools.run("vagrant", "plugin", "list", timeout_s=120, check=False)
        has = "vagrant-libvirt" in plugins.stdout
        out.append(Check("vagrant-libvirt", has, "installed" if has else "plugin not installed",
                         "apt-get install vagrant-libvirt libvirt-daemon-system (or vagrant plugin install "
                         "vagrant-libvirt) and add yourself to the libvirt group"))
    if provider == "virtualbox" and not tools.which("VBoxManage"):
        out.append(Check("virtualbox", False, "VBoxManage not found on PATH", "install VirtualBox 7"))
    cpus = os.cpu_count() or 0
    out.append(Check("cpus", cpus >= settings.cpus, f"{cpus} on the host, the VM wants {settings.cpus}",
                     "lower cpus in vagrant/settings.yaml (or MINIKF_VM_CPUS)"))
    mem = preflight._mem_total_gib(Path("/proc"))
    want = settings.memory_mib / 1024 + 2
    out.append(Check("memory", mem is not None and mem >= want,
                     f"{mem or 0:.1f} GiB on the host, the VM wants {settings.memory_mib / 1024:.0f} GiB + 2",
                     "lower memory_mib in vagrant/settings.yaml (or MINIKF_VM_MEMORY_MIB)"))
    if gpus:
        ok = bool(settings.gpu_pci) and provider == "libvirt"
        out.append(Check("gpu passthrough", ok, f"gpu_pci={settings.gpu_pci or '[]'}, provider {provider}",
                         "set gpu_pci in vagrant/settings.yaml to the GPU's PCI address "
                         "(lspci -D | grep -i nvidia),"
                         " bind it to vfio-pci and use --provider libvirt"))
    return out


def point_at_host(kubeconfig_text: str, api_port: int) -> str:
    """The guest's kubeconfig with every cluster's server set to the host's forwarded port."""
    doc = yaml.safe_load(kubeconfig_text) or {}
    for entry in doc.get("clusters") or []:
        (entry.get("cluster") or {})["server"] = f"https://127.0.0.1:{api_port}"
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class VagrantAppliance:
    provider: str = "libvirt"
    gpus: bool = False
    components: list[str] = field(default_factory=list)
    settings_path: Path = SETTINGS
    tools: Tools = field(default_factory=Tools)
    say: Callable[[str], None] = field(default=print)
    name: str = "minikf-vm"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.tools.path is not None:
            env["PATH"] = self.tools.path
        env.update(self.tools.env)
        env["MINIKF_SETTINGS"] = str(self.settings_path)
        env["VAGRANT_DEFAULT_PROVIDER"] = self.provider
        if self.components:
            env["MINIKF_VM_COMPONENTS"] = ",".join(self.components)
        if self.gpus:
            env["MINIKF_VM_GPUS"] = "1"
        return env

    def _vagrant(self):
        import vagrant  # python-vagrant

        return vagrant.Vagrant(root=str(ROOT), quiet_stdout=False, quiet_stderr=False, env=self._env())

    def up(self) -> dict[str, str]:
        settings = VagrantSettings.load(self.settings_path)
        checks = vagrant_checks(self.tools, self.provider, settings, self.gpus)
        preflight.require(checks, f"minikf up --driver vagrant --provider {self.provider}")
        for check in checks:
            self.say(f" ✓ {check.name}: {check.detail}")
        machine = self._vagrant()
        try:
            machine.up(provider=self.provider)
            guest = machine.ssh(command=f"cat {GUEST_KUBECONFIG}")
        except subprocess.CalledProcessError as exc:  # vagrant already printed why
            raise MinikfError(f"vagrant up failed: {exc}; see the output above, `vagrant status`, "
                              f"and `vagrant destroy` to start over (the data disk stays)", 1) from None
        path = home(self.name) / "kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(point_at_host(guest, settings.api_port))
        path.chmod(0o600)
        found = {"kubeconfig": str(path), "gateway": f"http://127.0.0.1:{settings.gateway_port}"}
        ApplianceState(name=self.name, driver="vagrant", components=self.components, kubeconfig=str(path),
                       endpoints=found, versions={"box": settings.box}).save()
        return found

    def down(self) -> None:
        try:
            self._vagrant().destroy()
        except subprocess.CalledProcessError as exc:
            raise MinikfError(f"vagrant destroy failed: {exc}", 1) from None
        for leftover in ("kubeconfig", "state.json"):
            (home(self.name) / leftover).unlink(missing_ok=True)
