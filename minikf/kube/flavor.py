"""Which flavor of the kubernetes platform runs a capability: `kubeflow` or `core`.

kubeflow: training as a PyTorchJob (Training Operator) or TrainJob (Trainer), serving as a KServe
InferenceService. core: plain Kubernetes (an Indexed Job, a Deployment), for clusters without
Kubeflow. The choice is discovery, not a guess: a Kubeflow path is taken when its CRD is served
*and* its controller's Deployment has a ready replica (a CRD nobody reconciles would leave the job
pending until the step times out). A forced flavor (`--flavor`, MINIKF_KUBE_FLAVOR) wins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from minikf.kube import objects as res
from minikf.kube.client import Cluster, Crd, api_call
from minikf.runtime.errors import MinikfError

FLAVORS = ("auto", "core", "kubeflow")
ENV = "MINIKF_KUBE_FLAVOR"
# Where the Kubeflow controllers run in the upstream manifests (and in KServe's own install).
CONTROLLER_NAMESPACES = ("kubeflow", "kubeflow-system", "kserve")
# CRD -> the Deployment whose ready replica reconciles it.
CONTROLLERS: dict[Crd, str] = {
    res.PYTORCHJOB: "training-operator",
    res.TRAINJOB: "kubeflow-trainer-controller-manager",
    res.INFERENCESERVICE: "kserve-controller-manager",
}
# capability -> the Kubeflow CRDs that provide it, in order of preference.
KUBEFLOW_PATHS: dict[str, tuple[Crd, ...]] = {
    "training": (res.PYTORCHJOB, res.TRAINJOB),
    "serving": (res.INFERENCESERVICE,),
}


@dataclass(frozen=True)
class Choice:
    """How one capability runs: `flavor` (core or kubeflow), through which CRD (kubeflow), and why."""

    flavor: str
    why: str
    crd: Crd | None = None

    def line(self) -> str:
        via = f" ({self.crd.plural}.{self.crd.group})" if self.crd else ""
        return f"{self.flavor}{via}: {self.why}"


def requested_flavor(flavor: str | None) -> str:
    """The flavor asked for (argument, else MINIKF_KUBE_FLAVOR, else auto), checked."""
    chosen = (flavor or os.environ.get(ENV) or "auto").strip().lower()
    if chosen not in FLAVORS:
        source = "--flavor" if flavor else ENV
        raise MinikfError(f"{source}={chosen!r} is not a kubernetes flavor; expected one of "
                          f"{', '.join(FLAVORS)}", 2)
    return chosen


def controller_status(cluster: Cluster) -> tuple[dict[str, str], list[str]]:
    """({deployment name: "ready" or why not}, [namespaces that could not be read and why])."""
    import urllib3
    from kubernetes.client.rest import ApiException

    found: dict[str, str] = {}
    unreadable: list[str] = []
    wanted = set(CONTROLLERS.values())
    for namespace in CONTROLLER_NAMESPACES:
        try:
            doc = api_call(cluster, f"/apis/apps/v1/namespaces/{namespace}/deployments",
                           timeout_s=cluster.timeout_s)
        except ApiException as exc:
            if exc.status != 404:
                unreadable.append(f"{namespace} (HTTP {exc.status})")
            continue
        except urllib3.exceptions.HTTPError as exc:
            unreadable.append(f"{namespace} ({type(exc).__name__})")
            continue
        for item in doc.get("items", []):
            name = item["metadata"]["name"]
            if name in wanted:
                ready = (item.get("status") or {}).get("readyReplicas") or 0
                found[name] = "ready" if ready else f"in {namespace}, no ready replica"
    return found, unreadable


def choose(capability: str, requested: str, served: dict[str, bool],
           controllers: dict[str, str], unreadable: list[str]) -> Choice:
    """The flavor for `capability` given the CRDs served ({crd name: bool}) and the controllers."""
    crds = KUBEFLOW_PATHS[capability]
    if requested == "core":
        return Choice("core", "forced (--flavor core)")
    for crd in crds:
        if not served.get(crd.name):
            continue
        state = controllers.get(CONTROLLERS[crd])
        if state == "ready":
            return Choice("kubeflow", f"{CONTROLLERS[crd]} is ready", crd)
        if requested == "kubeflow":
            return Choice("kubeflow", "forced (--flavor kubeflow)", crd)
        if state is None and unreadable and len(unreadable) == len(CONTROLLER_NAMESPACES):
            return Choice("kubeflow", f"{crd.name} is served; its controller could not be looked "
                                      f"for (deployments in {', '.join(unreadable)}): assumed "
                                      f"running (--flavor core to use plain Kubernetes)", crd)
    names = " or ".join(f"{c.name} ({c.component})" for c in crds)
    if requested == "kubeflow":
        return Choice("kubeflow", f"forced, but no {names} CRD is served")
    if not any(served.get(c.name) for c in crds):
        return Choice("core", f"no {names} CRD on the cluster")
    states = "; ".join(f"{CONTROLLERS[c]}: {controllers.get(CONTROLLERS[c], 'not found')}"
                       for c in crds if served.get(c.name))
    return Choice("core", f"CRD served but no controller reconciles it ({states})")
