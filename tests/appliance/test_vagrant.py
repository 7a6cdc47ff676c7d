"""The Vagrant side and the scripts, checked by the real tools: `vagrant validate` (core and, when
the vagrant-libvirt plugin is installed, the libvirt provider block), shellcheck on every script
the appliance ships, python-vagrant driving the real vagrant binary, the settings file.

No VM can boot here (no box can be downloaded, no hypervisor), so `vagrant up` is not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from minikf.appliance.tools import Tools
from minikf.appliance.vagrant import ROOT, VagrantAppliance, VagrantSettings, point_at_host, vagrant_checks
from minikf.runtime.errors import MinikfError

VAGRANT = shutil.which("vagrant")
needs_vagrant = pytest.mark.skipif(VAGRANT is None, reason="vagrant is not installed here "
                                   "(.ci/setup.d/30-appliance.sh installs Debian's vagrant)")
SCRIPTS = [ROOT / "vagrant/provision.sh", ROOT / ".ci/setup.d/30-appliance.sh"]


def _has_libvirt_plugin() -> bool:
    result = Tools().run("vagrant", "plugin", "list", timeout_s=120, check=False)
    return "vagrant-libvirt" in result.stdout


def _copy_project(dest: Path) -> Path:
    (dest / "vagrant").mkdir(parents=True)
    shutil.copy(ROOT / "Vagrantfile", dest / "Vagrantfile")
    for path in (ROOT / "vagrant").iterdir():
        shutil.copy(path, dest / "vagrant" / path.name)
    return dest


@needs_vagrant
@pytest.mark.slow
def test_vagrantfile_validates_through_python_vagrant(tmp_path):
    """python-vagrant's Vagrant.validate runs the real `vagrant validate` on the repository's Vagrantfile.
    It runs on a copy in tmp_path: vagrant makes a `.vagrant` state dir next to the Vagrantfile
    whatever VAGRANT_DOTFILE_PATH says, and the work tree must stay as the tests found it."""
    import vagrant

    project = _copy_project(tmp_path / "project")
    if not _has_libvirt_plugin():
        result = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=project,
                                capture_output=True,
                                text=True, timeout=120)
        assert "validated successfully" in result.stdout
        pytest.skip("vagrant-libvirt is not installed: validated without the provider blocks")
    machine = vagrant.Vagrant(root=str(project), env={**os.environ, "VAGRANT_DEFAULT_PROVIDER": "libvirt"})
    assert "validated successfully" in machine.validate(str(project)).stdout.decode()


@needs_vagrant
@pytest.mark.slow
@pytest.mark.parametrize("bad, expected", [
    ('    lv.cpu_mode = "host-passthrough"\n    lv.cpuz = 2\n',
     "The following settings shouldn't exist: cpuz"),
    ('    lv.cpu_mode = "host-passthrough"\n', None),
])
def test_vagrant_validate_catches_a_bad_libvirt_setting(tmp_path, bad, expected):
    """The check is real: a misspelt provider option fails `vagrant validate`, the original passes."""
    if not _has_libvirt_plugin():
        pytest.skip("vagrant-libvirt is not installed, so provider settings are not validated")
    project = _copy_project(tmp_path)
    text = (project / "Vagrantfile").read_text()
    (project / "Vagrantfile").write_text(text.replace('    lv.cpu_mode = "host-passthrough"\n', bad))
    result = subprocess.run(["vagrant", "validate"], cwd=project, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "VAGRANT_DEFAULT_PROVIDER": "libvirt"})
    if expected is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and expected in result.stderr


@needs_vagrant
@pytest.mark.slow
def test_settings_override_reaches_the_vagrantfile(tmp_path):
    """MINIKF_VM_API_PORT=abc is read by the Vagrantfile (forwarded_port then rejects a non-port)."""
    project = _copy_project(tmp_path)
    result = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=project, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "MINIKF_VM_API_PORT": "0"})
    assert result.returncode != 0 and "Ports to forward must be 1 to 65535" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed here "
                    "(.ci/setup.d/30-appliance.sh installs it)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_shellcheck_clean(script):
    result = subprocess.run(["shellcheck", "--severity=style", str(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout


def test_settings_file_and_env_overrides(tmp_path):
    settings = VagrantSettings.load()
    assert settings.box == "debian/bookworm64" and settings.cpus >= 4 and settings.gpu_pci == []
    env = {"MINIKF_VM_CPUS": "3", "MINIKF_VM_GPU_PCI": "0000:01:00.0,0000:02:00.0"}
    settings = VagrantSettings.load(environ=env)
    assert settings.cpus == 3 and settings.gpu_pci == ["0000:01:00.0", "0000:02:00.0"]
    bad = tmp_path / "s.yaml"
    bad.write_text("cpu: 4\n")
    with pytest.raises(MinikfError, match=r"s.yaml: unknown setting\(s\) cpu"):
        VagrantSettings.load(bad, environ={})
    with pytest.raises(MinikfError, match="invalid literal"):
        VagrantSettings.load(environ={"MINIKF_VM_MEMORY_MIB": "lots"})


def test_vagrant_preflight_without_vagrant(tmp_path):
    checks = {c.name: c for c in vagrant_checks(Tools(path=str(tmp_path)), "virtualbox",
                                                 VagrantSettings(cpus=10_000), gpus=True)}
    assert not checks["vagrant"].ok and "apt-get install vagrant" in checks["vagrant"].fix
    assert not checks["virtualbox"].ok and not checks["cpus"].ok
    assert not checks["gpu passthrough"].ok and "vfio-pci" in checks["gpu passthrough"].fix
    with pytest.raises(MinikfError) as exc:
        VagrantAppliance(provider="virtualbox", tools=Tools(path=str(tmp_path)), say=lambda m: None).up()
    assert "preflight for minikf up --driver vagrant --provider virtualbox failed" in exc.value.message


def test_guest_kubeconfig_points_at_the_forwarded_port():
    guest = "apiVersion: v1\nclusters:\n- name: kind-minikf\n  cluster: {server: 'https://0.0.0.0:6443'}\n"
    doc = yaml.safe_load(point_at_host(guest, 16443))
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:16443"
