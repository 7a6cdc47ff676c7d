"""Apply the chosen components with kustomize + kubectl and wait for each to be ready.

A readiness wait that runs out writes a diagnostics bundle (events, pod describes, the last log
lines of every pod in the namespace) and the error names it, with each stuck container's reason
(ImagePullBackOff, CrashLoopBackOff, ...). On a cluster minikf did not make (`--driver existing`)
the installer also notes which objects it created, so `minikf down` removes those and nothing
that was there before.
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from minikf.appliance.components import Apply, Component, Mirrors, Wait
from minikf.appliance.tools import Tools
from minikf.runtime.errors import MinikfError

LOG_TAIL_LINES = 50
NAMES_JSONPATH = 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}'


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
    for kind in ("deployments", "daemonsets", "statefulsets"):
        (root / f"describe-{kind}.txt").write_text(kubectl("describe", kind, *ns))
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


@dataclass(frozen=True)
class ObjectRef:
    """One object a manifest holds: enough to find it again and to delete it."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def resource(self) -> str:
        """KIND.VERSION.GROUP, which kubectl resolves without ambiguity ("Namespace.v1." for core)."""
        group, _, version = self.api_version.rpartition("/")
        return f"{self.kind}.{version}.{group}"

    def as_dict(self) -> dict[str, str]:
        return {"apiVersion": self.api_version, "kind": self.kind, "namespace": self.namespace,
                "name": self.name}


def object_refs(manifests: str) -> list[ObjectRef]:
    """The objects of a multi-document YAML stream, in order."""
    out = []
    for doc in yaml.safe_load_all(manifests):
        if isinstance(doc, dict) and doc.get("kind") and doc.get("metadata", {}).get("name"):
            out.append(ObjectRef(doc.get("apiVersion", ""), doc["kind"],
                                 doc["metadata"].get("namespace", ""), doc["metadata"]["name"]))
    return out


def stuck_pods(tools: Tools, kubeconfig: Path, namespace: str, limit: int = 3) -> str:
    """Why pods in `namespace` are not ready, from their container states: `pod: reason` for up to
    `limit` pods (what a user needs first when a wait runs out); empty if nothing says."""
    result = tools.run("kubectl", "--kubeconfig", str(kubeconfig), "get", "pods", "-n", namespace,
                       "-o", "json", timeout_s=60, check=False)
    if not result.ok:
        return ""
    found = []
    for pod in json.loads(result.stdout or "{}").get("items", []):
        status = pod.get("status") or {}
        containers = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
        reasons = {((c.get("state") or {}).get("waiting") or {}).get("reason") for c in containers}
        reasons.discard(None)
        if not reasons and status.get("phase") not in ("Running", "Succeeded"):
            reasons = {status.get("phase") or "Unknown"}
        if reasons:
            found.append(f"{pod['metadata']['name']}: {', '.join(sorted(reasons))}")
    more = f" (+{len(found) - limit} more)" if len(found) > limit else ""
    return "; ".join(found[:limit]) + more


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
    wait_timeout_s: int | None = None  # caps every readiness wait (CI, a quick look)
    # Called with the objects each apply created (None: not tracked; only `--driver existing` does).
    on_created: Callable[[list[ObjectRef]], None] | None = None

    def _kubectl(self, *args: str, **kw):
        return self.tools.run("kubectl", "--kubeconfig", str(self.kubeconfig), *args, **kw)

    def build(self, step: Apply) -> str:
        target = self.mirrors.target(step)
        return self.tools.run("kubectl", "kustomize", target, timeout_s=600).stdout

    def apply(self, component: Component, step: Apply) -> None:
        manifests = self.build(step)
        before = self.existing(object_refs(manifests)) if self.on_created is not None else set()
        args = ["apply", "-f", "-"] + (["--server-side", "--force-conflicts"] if step.server_side else [])
        last = ""
        for attempt in range(1, self.apply_attempts + 1):
            result = self._kubectl(*args, input=manifests, timeout_s=600, check=False)
            if result.ok:
                break
            last = result.last_line()
            if attempt < self.apply_attempts:
                self.say(f"  {component.name}: apply {step.path} failed ({last[:100]}), retrying")
                time.sleep(self.retry_wait_s)
        if self.on_created is not None:  # also after a failed apply: some objects may be there
            self.on_created([ref for ref in object_refs(manifests) if ref not in before])
        if not result.ok:
            raise MinikfError(f"{component.name}: `kubectl apply` of {step.path} failed "
                              f"{self.apply_attempts} times: {last}", 1)

    def existing(self, refs: list[ObjectRef]) -> set[ObjectRef]:
        """Which of `refs` the cluster has now: one list per kind (a kind it does not serve yet,
        such as a CRD's before it is applied, has none of them)."""
        found = set()
        for resource in dict.fromkeys(ref.resource for ref in refs):
            result = self._kubectl("get", resource, "--all-namespaces", "--ignore-not-found", "-o",
                                   NAMES_JSONPATH, timeout_s=120, check=False)
            if result.ok:
                names = set(result.stdout.split())
                found |= {r for r in refs if r.resource == resource and f"{r.namespace}/{r.name}" in names}
        return found

    def _until_ready(self, args: list[str], deadline: float) -> tuple[bool, str]:
        """Run a kubectl wait-like command until it succeeds or `deadline`; right after apply the
        workload may not exist yet, which is worth waiting for, any other failure is not."""
        last = ""
        while True:
            remaining = max(1, int(deadline - time.monotonic()))
            result = self._kubectl(*args, f"--timeout={remaining}s", timeout_s=remaining + 60, check=False)
            if result.ok:
                return True, ""
            last = result.last_line()
            not_there = "not found" in last.lower() or "no matching resources" in last.lower()
            if not not_there or time.monotonic() >= deadline:
                return False, last
            time.sleep(self.poll_s)

    def wait(self, component: Component, wait: Wait) -> None:
        timeout_s = min(wait.timeout_s, self.wait_timeout_s or wait.timeout_s)
        deadline = time.monotonic() + timeout_s
        ns = ["-n", wait.namespace]
        if wait.kind == "deployment":
            targets = ([f"deployment/{d}" for d in wait.deployments] if wait.deployments
                       else ["deployment", "--all"])
            ok, last = self._until_ready(["wait", "--for=condition=Available", *targets, *ns], deadline)
        else:  # DaemonSets and StatefulSets have no Available condition: their rollout is the test
            names = wait.deployments or tuple(self._kubectl(
                "get", wait.kind, *ns, "-o", "name", timeout_s=60, check=False).stdout.split())
            ok, last = True, ""
            for name in names:
                target = name if "/" in name else f"{wait.kind}/{name}"
                ok, last = self._until_ready(["rollout", "status", target, *ns], deadline)
                if not ok:
                    break
        if ok:
            return
        stuck = stuck_pods(self.tools, self.kubeconfig, wait.namespace)
        bundle = collect_diagnostics(self.tools, self.kubeconfig, wait.namespace, self.diagnostics_dir,
                                     component.name)
        what = "deployments" if wait.kind == "deployment" else f"{wait.kind}s"
        state = "Available" if wait.kind == "deployment" else "rolled out"
        raise MinikfError(f"{component.name}: {what} in namespace {wait.namespace} not {state} within "
                          f"{timeout_s}s ({last[:160]})" + (f"; pods: {stuck}" if stuck else "")
                          + f"; diagnostics: {bundle}", 1)

    def remove(self, refs: list[ObjectRef]) -> list[str]:
        """Delete `refs` in reverse order of creation, namespaces last (their contents go with
        them); one kubectl call per kind and namespace. Lines for what could not be deleted."""
        ordered = [r for r in reversed(refs) if r.kind != "Namespace"]
        ordered += [r for r in reversed(refs) if r.kind == "Namespace"]
        groups: dict[tuple[str, str], list[str]] = {}
        for ref in ordered:
            groups.setdefault((ref.resource, ref.namespace), []).append(ref.name)
        problems = []
        for (resource, namespace), names in groups.items():
            ns = ["-n", namespace] if namespace else []
            result = self._kubectl("delete", resource, *names, *ns, "--ignore-not-found", "--wait=false",
                                   timeout_s=300, check=False)
            if not result.ok and "the server doesn't have a resource type" not in result.last_line():
                problems.append(f"{resource} {' '.join(names)}: {result.last_line()}")
        return problems

    def install(self, components: list[Component]) -> None:
        for component in components:
            self.say(f"installing {component.name}: {component.description}")
            for step in component.steps:
                if isinstance(step, Apply):
                    self.apply(component, step)
                else:
                    self.wait(component, step)
            self.say(f" ✓ {component.name}")
