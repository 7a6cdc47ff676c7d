"""`minikf status`: each component's health, read from the workloads its readiness waits name
(Deployments, DaemonSets, StatefulSets).

The connection goes through minikf.kube.client.connect, so an unreachable or unusable kubeconfig
is the same one-line error the kubernetes platform gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from minikf.appliance.components import Component


@dataclass(frozen=True)
class Health:
    component: str
    state: str  # ready | not ready | not installed | no readiness check
    detail: str


def _ready_counts(kind: str, item: dict) -> tuple[int, int]:
    """(ready, wanted) of a Deployment, DaemonSet or StatefulSet from its status."""
    spec, status = item.get("spec") or {}, item.get("status") or {}
    if kind == "daemonset":
        return int(status.get("numberAvailable") or 0), int(status.get("desiredNumberScheduled") or 0)
    if kind == "statefulset":
        return int(status.get("readyReplicas") or 0), int(spec.get("replicas", 1))
    return int(status.get("availableReplicas") or 0), int(spec.get("replicas", 1))


def _deployments(cluster, namespace: str, kind: str = "deployment") -> dict[str, tuple[int, int]] | None:
    """name -> (ready, wanted) of the namespace's workloads of `kind`, or None when there are none
    or the namespace is absent."""
    import urllib3
    from kubernetes.client.rest import ApiException

    from minikf.kube.client import api_call
    from minikf.runtime.errors import MinikfError

    try:
        doc = api_call(cluster, f"/apis/apps/v1/namespaces/{namespace}/{kind}s",
                       timeout_s=cluster.timeout_s)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise MinikfError(f"listing {kind}s in namespace {namespace} on {cluster.server} answered "
                          f"HTTP {exc.status} {exc.reason}" + (f"; this user may not list {kind}s there"
                                                               if exc.status == 403 else ""), 3) from None
    except urllib3.exceptions.HTTPError as exc:
        raise MinikfError(f"the Kubernetes API server at {cluster.server} stopped answering: "
                          f"{type(exc).__name__}", 3) from None
    out = {}
    for item in doc.get("items", []):
        out[item["metadata"]["name"]] = _ready_counts(kind, item)
    return out or None


def health(cluster, components: list[Component]) -> list[Health]:
    """One Health per component, from its readiness waits' workloads."""
    cache: dict[tuple[str, str], dict[str, tuple[int, int]] | None] = {}
    out = []
    for component in components:
        waits = component.waits
        if not waits:
            out.append(Health(component.name, "no readiness check", "applied objects only"))
            continue
        missing, unready, ready = [], [], []
        for wait in waits:
            key = (wait.namespace, wait.kind)
            if key not in cache:
                cache[key] = _deployments(cluster, wait.namespace, wait.kind)
            found = cache[key] or {}
            names = wait.deployments or tuple(found)
            if not names:
                missing.append(f"{wait.namespace}/*")
            for name in names:
                if name not in found:
                    missing.append(f"{wait.namespace}/{name}")
                elif found[name][0] < max(1, found[name][1]):
                    unready.append(f"{wait.namespace}/{name} {found[name][0]}/{found[name][1]}")
                else:
                    ready.append(name)
        if missing and not ready and not unready:
            kinds = " or ".join(sorted({w.kind for w in waits}))
            out.append(Health(component.name, "not installed", f"no {kinds} {', '.join(missing)}"))
        elif missing or unready:
            problems = unready + [f"missing {m}" for m in missing]
            out.append(Health(component.name, "not ready", "; ".join(problems)))
        else:
            kinds = "/".join(sorted({w.kind for w in waits}))
            out.append(Health(component.name, "ready", f"{len(ready)} {kinds}(s) available"))
    return out
