"""Apply the chosen components with kustomize + kubectl and wait for each to be ready.

A readiness wait that runs out writes a diagnostics bundle (events, pod describes, the last log
lines of every pod in the namespace) and the error names it.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from minikf.appliance.components import Apply, Component, Mirrors, Wait
from minikf.appliance.tools import Tools
from minikf.runtime.errors import MinikfError

LOG_TAIL_LINES = 50


def collect_diagnostics(tools: Tools, kubeconfig: Path, namespace: str, dest_dir: Path, label: str) -> Path:
    """Write events, pod list, describes and log tails for `namespace` into DEST/LABEL-TIME.tar.gz.

    Every kubectl call is recorded with its own output or error, so a bundle from a cluster that
    stopped answering still says so instead of being empty.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = dest_dir / f"{label}-{stamp}"
    (root / "logs").mkdir(parents=True, exist_ok=True)

    def kubectl(*args: str) -> str:
        result = tools.run("kubectl", "--kubeconfig", str(kubeconfig), *args, timeout_s=60, check=False)
        return f"$ kubectl {' '.join(args)}\n(exit {result.returncode})\n{result.stdout}{result.stderr}"

    ns = ["-n", namespace]
    (root / "events.txt").write_text(kubectl("get", "events", *ns, "--sort-by=.lastTimestamp"))
    (root / "pods.txt").write_text(kubectl("get", "pods", *ns, "-o", "wide"))
    (root / "describe-pods.txt").write_text(kubectl("describe", "pods", *ns))
    (root / "describe-deployments.txt").write_text(kubectl("describe", "deployments", *ns))
    names = tools.run("kubectl", "--kubeconfig", str(kubeconfig), "get", "pods", *ns, "-o", "name",
                      timeout_s=60, check=False)
    for pod in names.stdout.split() if names.ok else []:
        short = pod.split("/", 1)[-1]
        (root / "logs" / f"{short}.txt").write_text(
            kubectl("logs", pod, *ns, "--all-containers", f"--tail={LOG_TAIL_LINES}", "--prefix"))
    bundle = root.with_suffix(".tar.gz")
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(root, arcname=root.name)
    return bundle


@dataclass
class Installer:
    """Installs components into the cluster `kubeconfig` points at."""

    tools: Tools
    kubeconfig: Path
    mirrors: Mirrors
    diagnostics_dir: Path
    apply_attempts: int = 5  # CRDs must be Established and webhooks up before their objects apply
    retry_wait_s: float = 10.0
    poll_s: float = 5.0
    say: Callable[[str], None] = field(default=lambda msg: None)

    def _kubectl(self, *args: str, **kw):
        return self.tools.run("kubectl", "--kubeconfig", str(self.kubeconfig), *args, **kw)

    def build(self, step: Apply) -> str:
        target = self.mirrors.target(step)
        return self.tools.run("kubectl", "kustomize", target, timeout_s=600).stdout

    def apply(self, component: Component, step: Apply) -> None:
        manifests = self.build(step)
        args = ["apply", "-f", "-"] + (["--server-side", "--force-conflicts"] if step.server_side else [])
        last = ""
        for attempt in range(1, self.apply_attempts + 1):
            result = self._kubectl(*args, input=manifests, timeout_s=600, check=False)
            if result.ok:
                return
            last = result.last_line()
            if attempt < self.apply_attempts:
                self.say(f"  {component.name}: apply {step.path} failed ({last[:100]}), retrying")
                time.sleep(self.retry_wait_s)
        raise MinikfError(f"{component.name}: `kubectl apply` of {step.path} failed {self.apply_attempts} "
                          f"times: {last}", 1)

    def wait(self, component: Component, wait: Wait) -> None:
        targets = ([f"deployment/{d}" for d in wait.deployments] if wait.deployments
                   else ["deployment", "--all"])
        deadline = time.monotonic() + wait.timeout_s
        last = ""
        while True:
            remaining = max(1, int(deadline - time.monotonic()))
            result = self._kubectl("wait", "--for=condition=Available", *targets, "-n", wait.namespace,
                                   f"--timeout={remaining}s", timeout_s=remaining + 60, check=False)
            if result.ok:
                return
            last = result.last_line()
            # Right after apply the deployments may not exist yet: that is worth waiting for.
            not_there = "not found" in last.lower() or "no matching resources" in last.lower()
            if not not_there or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        bundle = collect_diagnostics(self.tools, self.kubeconfig, wait.namespace, self.diagnostics_dir,
                                     component.name)
        raise MinikfError(f"{component.name}: deployments in namespace {wait.namespace} not Available "
                          f"within {wait.timeout_s}s ({last[:160]}); diagnostics: {bundle}", 1)

    def install(self, components: list[Component]) -> None:
        for component in components:
            self.say(f"installing {component.name}: {component.description}")
            for step in component.steps:
                if isinstance(step, Apply):
                    self.apply(component, step)
                else:
                    self.wait(component, step)
            self.say(f" ✓ {component.name}")
