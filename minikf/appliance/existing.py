"""The existing driver: install the pinned components onto a cluster the user already has
(`minikf up --driver existing --kubeconfig F`), for vendors who bring their own Kubernetes.

Nothing is created but the components' objects. Each apply notes which objects were not there
before, in state.json as it goes, so `minikf down` deletes exactly those (also after an `up` that
failed half way) and leaves the cluster and whatever it held before alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from minikf.appliance import preflight
from minikf.appliance.components import KUBEFLOW_VERSION, KUSTOMIZE_MIN, Component, Mirrors
from minikf.appliance.install import Installer, ObjectRef
from minikf.appliance.preflight import Check
from minikf.appliance.state import ApplianceState, home
from minikf.appliance.tools import INSTALL_HINTS, Tools, parse_version
from minikf.runtime.errors import MinikfError


@dataclass
class ExistingAppliance:
    name: str
    kubeconfig: Path
    components: list[Component] = field(default_factory=list)
    context: str | None = None
    mirrors: Mirrors = field(default_factory=Mirrors)
    tools: Tools = field(default_factory=Tools)
    say: Callable[[str], None] = field(default=print)
    wait_timeout_s: int | None = None

    @property
    def dir(self) -> Path:
        return home(self.name)

    def preflight(self) -> tuple[list[Check], str]:
        """kubectl with kustomize 5, a readable kubeconfig and an API server that answers; the
        server's version."""
        checks: list[Check] = []
        if not self.tools.which("kubectl"):
            preflight.require([Check("kubectl", False, "not found on PATH", INSTALL_HINTS["kubectl"])],
                              "minikf up --driver existing")
        client = self.tools.run("kubectl", "version", "--client", timeout_s=30, check=False).stdout
        kustomize = next((parse_version(line) for line in client.splitlines()
                          if line.startswith("Kustomize Version")), None)
        want = ".".join(map(str, KUSTOMIZE_MIN))
        new_enough = kustomize is not None and kustomize >= KUSTOMIZE_MIN
        checks.append(Check("kustomize (kubectl kustomize)", new_enough,
                            f"v{'.'.join(map(str, kustomize))}" if kustomize else "version unknown",
                            f"Kubeflow's manifests need kustomize >= v{want}: install kubectl >= v1.27"))
        readable = self.kubeconfig.is_file()
        checks.append(Check("kubeconfig", readable, str(self.kubeconfig),
                            "give --kubeconfig the file of the cluster to install onto"))
        server = ""
        if readable:
            result = self._kubectl("version", "-o", "json", "--request-timeout=20s", timeout_s=60,
                                   check=False)
            try:
                server = json.loads(result.stdout or "{}").get("serverVersion", {}).get("gitVersion", "")
            except ValueError:
                server = ""
            checks.append(Check("API server", bool(server), f"Kubernetes {server}" if server else
                                f"no answer ({result.last_line()[:120]})",
                                "check the kubeconfig's server, credentials and context"))
        preflight.require(checks, f"minikf up --driver existing ({self.kubeconfig})")
        return checks, server

    def _kubectl(self, *args: str, **kw):
        context = ["--context", self.context] if self.context else []
        return self.tools.run("kubectl", "--kubeconfig", str(self.kubeconfig), *context, *args, **kw)

    def _kubeconfig_for_install(self) -> Path:
        """The kubeconfig the installer uses: the user's, or with --context a copy of just that
        context (0600, in the appliance's dir) so every later command talks to the same cluster."""
        if not self.context:
            return self.kubeconfig
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "kubeconfig"
        text = self._kubectl("config", "view", "--minify", "--flatten", timeout_s=60).stdout
        path.touch(mode=0o600)
        path.write_text(text)
        return path

    def up(self) -> dict[str, str]:
        checks, server = self.preflight()
        for check in checks:
            self.say(f" ✓ {check.name}: {check.detail}")
        kubeconfig = self._kubeconfig_for_install()
        previous = ApplianceState.load(self.name)
        if previous is not None and previous.driver != "existing":
            raise MinikfError(f"appliance {self.name!r} is a {previous.driver} cluster; pick another --name "
                              f"or `minikf down --name {self.name}` first", 2)
        state = ApplianceState(name=self.name, driver="existing",
                               components=[c.name for c in self.components],
                               kubeconfig=str(kubeconfig), endpoints={"kubeconfig": str(kubeconfig)},
                               versions={"kubeflow": KUBEFLOW_VERSION, "kubernetes": server},
                               created=list(previous.created) if previous else [])

        def record(refs: list[ObjectRef]) -> None:
            known = {tuple(d.values()) for d in state.created}
            state.created += [r.as_dict() for r in refs if tuple(r.as_dict().values()) not in known]
            state.save()

        state.save()
        Installer(self.tools, kubeconfig, self.mirrors, self.dir / "diagnostics", say=self.say,
                  wait_timeout_s=self.wait_timeout_s, on_created=record).install(self.components)
        if any(c.name == "istio" for c in self.components):
            state.endpoints["gateway"] = ("kubectl port-forward -n istio-system svc/istio-ingressgateway "
                                          "8080:80, then http://127.0.0.1:8080")
        state.save()
        return state.endpoints

    def down(self) -> list[str]:
        """Delete what `up` created; lines for what could not be deleted. The state goes too."""
        state = ApplianceState.load(self.name)
        if state is None:
            return []
        refs = [ObjectRef(d["apiVersion"], d["kind"], d["namespace"], d["name"]) for d in state.created]
        problems = Installer(self.tools, Path(state.kubeconfig), self.mirrors, self.dir / "diagnostics",
                             say=self.say).remove(refs) if refs else []
        if problems:
            raise MinikfError(f"appliance {self.name}: could not delete " + "; ".join(problems)[:600]
                              + " (state kept: run `minikf down` again)", 1)
        self.say(f"deleted {len(refs)} object(s) that `minikf up` created on {state.kubeconfig}")
        for leftover in ("state.json", "kubeconfig"):
            (self.dir / leftover).unlink(missing_ok=True)
        return problems
