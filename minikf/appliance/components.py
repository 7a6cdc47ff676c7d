"""The pinned Kubeflow components `minikf up` installs, where their manifests come from, and how to
tell they are ready.

Sources are pinned upstream releases; each one can be replaced by a mirror (a local checkout, or
another git/HTTP location) for air-gapped sites: `--mirror NAME=LOCATION` or the environment
variable MINIKF_MIRROR_<NAME> (upper case, `-` as `_`). kustomize fetches git sources itself
(`URL//path?ref=REF`), so nothing here downloads by hand.

Paths, server-side applies and the install order follow the "Install Individual Components" section
of kubeflow/manifests at KUBEFLOW_VERSION; the versions in the descriptions and the workloads each
readiness wait names are those that release builds. tests/appliance/test_upstream.py checks all of
it against tests/data/upstream-index.json (tools/upstream_index.py), so a pin that moves without
them fails there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from minikf.runtime.errors import MinikfError

# v1.10.2, not v1.10.0: the same component versions plus fixes, and the `applications/` and
# `common/istio/` layout (v1.10.0 still had `apps/` and `common/istio-1-24/`).
KUBEFLOW_VERSION = "v1.10.2"
KIND_VERSION = "v0.27.0"
# kind v0.27.0's image for Kubernetes 1.32 (the version Kubeflow 1.10 was validated on), by digest.
KIND_NODE_IMAGE = ("kindest/node:v1.32.2"
                   "@sha256:f226345927d7e348497136874b6d207e0b32cc52154ad8323129352923a3142f")
KUBECTL_MIN = (1, 30, 0)  # within the version skew of the 1.32 node image
KUSTOMIZE_MIN = (5, 0, 0)  # Kubeflow's manifests use sortOptions, which needs kustomize 5
KIND_MIN = (0, 27, 0)
NVIDIA_DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"

LOCAL_MANIFESTS = Path(__file__).parent / "manifests"


@dataclass(frozen=True)
class Source:
    """Where a set of manifests comes from: a git repository at a pinned ref."""

    name: str
    url: str
    ref: str

    @property
    def env_var(self) -> str:
        return "MINIKF_MIRROR_" + self.name.upper().replace("-", "_")


SOURCES: dict[str, Source] = {
    "kubeflow-manifests": Source("kubeflow-manifests", "https://github.com/kubeflow/manifests",
                                 KUBEFLOW_VERSION),
    # The manifests in this repository (minikf/appliance/manifests): never fetched.
    "minikf": Source("minikf", str(LOCAL_MANIFESTS), ""),
}


@dataclass(frozen=True)
class Apply:
    """`kubectl kustomize TARGET | kubectl apply -f -` for one directory of a source."""

    path: str
    source: str = "kubeflow-manifests"
    server_side: bool = False  # large CRDs exceed the last-applied annotation; upstream applies these so


WORKLOAD_KINDS = ("deployment", "daemonset", "statefulset")


@dataclass(frozen=True)
class Wait:
    """Workloads of `kind` that must become ready within `timeout_s` (None: every one of that kind
    in the namespace): a Deployment Available, a DaemonSet or StatefulSet rolled out."""

    namespace: str
    deployments: tuple[str, ...] | None = None  # the names, whatever the kind
    timeout_s: int = 300
    kind: str = "deployment"

    def __post_init__(self) -> None:
        if self.kind not in WORKLOAD_KINDS:
            raise ValueError(f"Wait kind {self.kind!r}: expected one of {', '.join(WORKLOAD_KINDS)}")


@dataclass(frozen=True)
class Component:
    name: str
    description: str
    steps: tuple[Apply | Wait, ...]
    needs: tuple[str, ...] = ()

    @property
    def waits(self) -> list[Wait]:
        return [s for s in self.steps if isinstance(s, Wait)]


_KF = "kubeflow"

# In install order: a component comes after everything it needs.
COMPONENTS: dict[str, Component] = {c.name: c for c in [
    Component("cert-manager", "certificates for the admission webhooks", (
        Apply("common/cert-manager/base"),
        Wait("cert-manager", None, 180),
        Apply("common/cert-manager/kubeflow-issuer/base"),
    )),
    Component("istio", "Istio 1.26: service mesh and ingress gateway", (
        Apply("common/istio/istio-crds/base"),
        Apply("common/istio/istio-namespace/base"),
        Apply("common/istio/istio-install/overlays/oauth2-proxy"),
        Wait("istio-system", None, 300),
    )),
    Component("oauth2-proxy", "OIDC client in front of the gateway", (
        Apply("common/oauth2-proxy/overlays/m2m-dex-only"),
        Wait("oauth2-proxy", None, 180),
    ), needs=("istio",)),
    Component("dex", "identity provider (static user user@example.com)", (
        Apply("common/dex/overlays/oauth2-proxy"),
        Wait("auth", None, 180),
    ), needs=("oauth2-proxy",)),
    Component("knative", "Knative Serving, for KServe's serverless mode", (
        Apply("common/knative/knative-serving/overlays/gateways"),
        Apply("common/istio/cluster-local-gateway/base"),
        Wait("knative-serving", None, 300),
    ), needs=("istio",)),
    Component("kubeflow-base", "kubeflow namespace, network policies, roles, gateway", (
        Apply("common/kubeflow-namespace/base"),
        Apply("common/networkpolicies/base"),
        Apply("common/kubeflow-roles/base"),
        Apply("common/istio/kubeflow-istio-resources/base"),
    ), needs=("istio",)),
    Component("profiles", "Profiles controller and KFAM (multi-user isolation)", (
        Apply("applications/profiles/upstream/overlays/kubeflow"),
        Wait(_KF, ("profiles-deployment",), 300),
    ), needs=("kubeflow-base",)),
    Component("pipelines", "Kubeflow Pipelines 2.5 (multi-user)", (
        Apply("applications/pipeline/upstream/env/cert-manager/platform-agnostic-multi-user"),
        Wait(_KF, ("ml-pipeline", "ml-pipeline-ui", "ml-pipeline-persistenceagent",
                   "ml-pipeline-scheduledworkflow", "workflow-controller", "mysql", "minio"), 600),
        # metacontroller runs KFP's profile controller, which readies each user namespace for runs
        Wait(_KF, ("metacontroller",), 300, kind="statefulset"),
    ), needs=("cert-manager", "kubeflow-base", "profiles")),
    Component("training-operator", "Training Operator 1.9 (PyTorchJob)", (
        Apply("applications/training-operator/upstream/overlays/kubeflow", server_side=True),
        Wait(_KF, ("training-operator",), 300),
    ), needs=("kubeflow-base",)),
    Component("kserve", "KServe 0.15 (InferenceService)", (
        Apply("applications/kserve/kserve", server_side=True),
        Wait(_KF, ("kserve-controller-manager",), 300),
    ), needs=("cert-manager", "knative", "kubeflow-base")),
    Component("katib", "Katib 0.18 (hyperparameter tuning)", (
        Apply("applications/katib/upstream/installs/katib-with-kubeflow"),
        Wait(_KF, ("katib-controller", "katib-db-manager", "katib-mysql"), 300),
    ), needs=("cert-manager", "kubeflow-base")),
    Component("notebooks", "Notebook controller, Jupyter web app, PodDefaults webhook", (
        Apply("applications/admission-webhook/upstream/overlays/cert-manager"),
        Apply("applications/jupyter/notebook-controller/upstream/overlays/kubeflow"),
        Apply("applications/jupyter/jupyter-web-app/upstream/overlays/istio"),
        Wait(_KF, ("admission-webhook-deployment", "notebook-controller-deployment",
                   "jupyter-web-app-deployment"), 300),
    ), needs=("cert-manager", "kubeflow-base", "profiles")),
    Component("dashboard", "Central Dashboard", (
        Apply("applications/centraldashboard/overlays/oauth2-proxy"),
        Wait(_KF, ("centraldashboard",), 300),
    ), needs=("kubeflow-base", "profiles", "dex")),
    Component("user-namespace", "the example user's profile (kubeflow-user-example-com)", (
        Apply("common/user-namespace/base"),
    ), needs=("profiles",)),
    Component("minikf", "the namespace and service account the harness runs journeys as", (
        Apply("base/minikf-namespace", source="minikf"),
    ), needs=("kubeflow-base",)),
    Component("gpu", "NVIDIA device plugin and the nvidia RuntimeClass", (
        Apply("overlays/gpu", source="minikf"),
        Wait("kube-system", ("nvidia-device-plugin",), 180, kind="daemonset"),
    )),
]}

DEFAULT_COMPONENTS = tuple(n for n in COMPONENTS if n != "gpu")


def resolve(names: list[str] | tuple[str, ...] | None, gpus: bool = False,
            with_needs: bool = True) -> list[Component]:
    """The named components plus everything they need (unless `with_needs` is off: a cluster that
    has those already), in install order; unknown names are an error."""
    wanted = list(names) if names else list(DEFAULT_COMPONENTS)
    unknown = [n for n in wanted if n not in COMPONENTS]
    if unknown:
        raise MinikfError(f"--components: unknown {', '.join(unknown)}; known: {', '.join(COMPONENTS)}", 2)
    if gpus:
        wanted.append("gpu")
    chosen: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name not in chosen:
            chosen.add(name)
            todo.extend(COMPONENTS[name].needs if with_needs else ())
    return [c for name, c in COMPONENTS.items() if name in chosen]


@dataclass
class Mirrors:
    """Per-source replacements: NAME -> a local directory or a git URL (optionally `URL@REF`)."""

    overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, pairs: list[str] | None, environ: dict[str, str] | None = None) -> Mirrors:
        environ = dict(os.environ) if environ is None else environ
        overrides = {name: environ[s.env_var] for name, s in SOURCES.items() if environ.get(s.env_var)}
        for pair in pairs or []:
            name, sep, location = pair.partition("=")
            if not sep or not location:
                raise MinikfError(f"--mirror {pair!r}: expected NAME=LOCATION", 2)
            if name not in SOURCES:
                raise MinikfError(f"--mirror {pair!r}: unknown source {name!r}; known: "
                                  f"{', '.join(SOURCES)}", 2)
            overrides[name] = location
        return cls(overrides)

    def target(self, step: Apply) -> str:
        """What to hand `kubectl kustomize`: a local directory or a kustomize remote URL."""
        source = SOURCES[step.source]
        location = self.overrides.get(step.source, source.url)
        ref = source.ref
        if "://" in location and "@" in location.rsplit("/", 1)[-1]:
            location, ref = location.rsplit("@", 1)
        if "://" in location or location.startswith("git@"):
            return f"{location}//{step.path}" + (f"?ref={ref}" if ref else "")
        path = Path(location).expanduser() / step.path
        if not path.is_dir():
            hint = f" (mirror for {step.source})" if step.source in self.overrides else ""
            raise MinikfError(f"manifests directory {path} does not exist{hint}", 2)
        return str(path)
