"""`minikf status`: each component's health, read from the cluster's deployments.

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


def _deployments(cluster, namespace: str) -> dict[str, tuple[int, int]] | None:
    """name -> (available, wanted) for the namespace, or None when the namespace has none/is absent."""
    import urllib3
    from kubernetes.client.rest import ApiException

    from minikf.kube.client import api_call
    from minikf.runtime.errors import MinikfError

    try:
        doc = api_call(cluster, f"/apis/apps/v1/namespaces/{namespace}/deployments",
                       timeout_s=cluster.timeout_s)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise MinikfError(f"listing deployments in namespace {namespace} on {cluster.server} answered "
                          f"HTTP {exc.status} {exc.reason}" + ("; this user may not list deployments there"
                                                               if exc.status == 403 else ""), 3) from None
    except urllib3.exceptions.HTTPError as exc:
        raise MinikfError(f"the Kubernetes API server at {cluster.server} stopped answering: "
                          f"{type(exc).__name__}", 3) from None
    out = {}
    for item in doc.get("items", []):
        spec, status = item.get("spec") or {}, item.get("status") or {}
        available, wanted = int(status.get("availableReplicas") or 0), int(spec.get("replicas", 1))
        out[item["metadata"]["name"]] = (available, wanted)
    return out or None


def health(cluster, components: list[Component]) -> list[Health]:
    """One Health per component, from its readiness waits' deployments."""
    cache: dict[str, dict[str, tuple[int, int]] | None] = {}
    out = []
    for component in components:
        waits = component.waits
        if not waits:
            out.append(Health(component.name, "no readiness check", "applied objects only"))
            continue
        missing, unready, ready = [], [], []
        for wait in waits:
            if wait.namespace not in cache:
                cache[wait.namespace] = _deployments(cluster, wait.namespace)
            found = cache[wait.namespace] or {}
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
            out.append(Health(component.name, "not installed", f"no deployment {', '.join(missing)}"))
        elif missing or unready:
            problems = unready + [f"missing {m}" for m in missing]
            out.append(Health(component.name, "not ready", "; ".join(problems)))
        else:
            out.append(Health(component.name, "ready", f"{len(ready)} deployment(s) available"))
    return out
