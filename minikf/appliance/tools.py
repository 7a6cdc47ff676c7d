"""The one seam for every external tool the appliance runs: kind, kubectl, docker, vagrant, nvidia-smi.

Everything goes through `Tools.run`, so a test can point `path` at a directory of its own (or an
empty one) and exercise the real binaries where they exist, and every failure turns into one
MinikfError line that names the command, its exit status and the last line it printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from minikf.runtime.errors import MinikfError

# What to tell a user who lacks a tool. Pinned versions live in minikf.appliance.components.
INSTALL_HINTS = {
    "docker": "install Docker Engine (Debian: apt-get install docker.io) and start it",
    "kind": "install kind v0.27.0 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
    "kubectl": "install kubectl v1.32 (https://kubernetes.io/docs/tasks/tools/)",
    "vagrant": "install Vagrant (Debian: apt-get install vagrant) and a provider "
               "(vagrant-libvirt or VirtualBox)",
    "nvidia-smi": "install the NVIDIA driver for your GPU (nvidia-smi comes with it)",
    "nvidia-ctk": "install the NVIDIA Container Toolkit (https://docs.nvidia.com/datacenter/cloud-native/"
                  "container-toolkit/latest/install-guide.html)",
}

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ToolResult:
    """What a finished command left: its argv, exit status, stdout and stderr."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_line(self) -> str:
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return ""


def parse_version(text: str) -> tuple[int, int, int] | None:
    """The first `vX.Y[.Z]` in a tool's version output, as a tuple."""
    match = _VERSION_RE.search(text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


@dataclass
class Tools:
    """Runs external tools found on `path` (default: $PATH) with an environment of their own."""

    path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    default_timeout_s: float = 600.0

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.path if self.path is not None else os.environ.get("PATH", ""))

    def require(self, name: str) -> str:
        found = self.which(name)
        if not found:
            hint = INSTALL_HINTS.get(name, f"install {name}")
            raise MinikfError(f"{name} not found on PATH: {hint}", 2)
        return found

    def _environ(self) -> dict[str, str]:
        environ = dict(os.environ)
        if self.path is not None:
            environ["PATH"] = self.path
        environ.update(self.env)
        return environ

    def run(self, name: str, *args: str, input: str | None = None, timeout_s: float | None = None,
            check: bool = True, cwd: str | None = None) -> ToolResult:
        """Run `name args...`; with check, a non-zero exit is a MinikfError naming the command."""
        argv = [self.require(name), *args]
        shown = " ".join([name, *args])
        limit = timeout_s or self.default_timeout_s
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=limit,
                                  env=self._environ(), cwd=cwd, check=False)
        except subprocess.TimeoutExpired:
            raise MinikfError(f"`{shown}` did not finish within {limit:.0f}s", 1) from None
        except OSError as exc:
            raise MinikfError(f"`{shown}` could not start: {exc.strerror or exc}", 1) from None
        result = ToolResult([name, *args], proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise MinikfError(f"`{shown}` failed (exit {proc.returncode}): {result.last_line()}", 1)
        return result

    def version(self, name: str, *args: str) -> tuple[int, int, int] | None:
        """The tool's version from `name args` (e.g. `kind version`), or None if it does not say."""
        result = self.run(name, *args, timeout_s=30, check=False)
        return parse_version(result.stdout + "\n" + result.stderr) if result.ok else None
