"""Connect to a cluster from a kubeconfig and say in one line what is wrong when it can't be used.

Everything a user can get wrong before a journey starts — a kubeconfig path that is not there,
a file that is not a kubeconfig, a context that is not in it, a server that does not answer,
credentials it rejects, a Kubeflow component whose CRD is not installed, a verb RBAC does not
allow — becomes a MinikfError naming the file, server, CRD or verb/resource.

The kubernetes client is imported inside the functions so `minikf --help` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minikf.runtime.errors import MinikfError

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Crd:
    """A custom resource a component installs: served at /apis/<group>/<version>, listed as `plural`."""

    group: str
    version: str
    plural: str
    component: str

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


@dataclass(frozen=True)
class Permission:
    """One verb on one resource, checked with a SelfSubjectAccessReview."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""

    def __str__(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {res}.{self.group}" if self.group else f"{self.verb} {res}"


@dataclass
class Cluster:
    """A reachable API server: the configured client plus what was learnt connecting to it."""

    api_client: Any  # kubernetes.client.ApiClient
    kubeconfig: str
    context: str
    server: str
    version: str
    namespace: str = "default"  # the context's namespace, if it names one
    timeout_s: float = DEFAULT_TIMEOUT_S
    info: dict = field(default_factory=dict)

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # noqa: BLE001 - closing a pool must not mask the real outcome
            pass


def _kubeconfig_path(kubeconfig: str | os.PathLike | None) -> Path:
    """The file to load: the one named, else $KUBECONFIG's first entry, else ~/.kube/config."""
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            why = "is a directory" if path.is_dir() else "does not exist"
            raise MinikfError(f"kubeconfig {path} {why}; pass --kubeconfig with a kubeconfig file", 2)
        return path
    env = os.environ.get("KUBECONFIG", "")
    candidates = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    candidates.append(Path("~/.kube/config").expanduser())
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise MinikfError(f"no kubeconfig found (looked at {looked}); pass --kubeconfig FILE", 2)


def _load(path: Path, context: str | None) -> tuple[Any, str, str]:
    """(configuration, context name, namespace) from the kubeconfig, or a one-line error."""
    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MinikfError(f"kubeconfig {path} is not readable YAML: {first}", 2) from None
    if not isinstance(doc, dict) or not doc.get("contexts"):
        raise MinikfError(f"kubeconfig {path} has no contexts; is it a kubeconfig file?", 2)
    names = [c.get("name") for c in doc["contexts"] if isinstance(c, dict)]
    chosen = context or doc.get("current-context")
    if not chosen:
        raise MinikfError(f"kubeconfig {path} has no current-context; pass --context (one of: "
                          f"{', '.join(map(str, names))})", 2)
    if chosen not in names:
        raise MinikfError(f"context {chosen!r} is not in kubeconfig {path}; known: "
                          f"{', '.join(map(str, names))}", 2)
    ctx = next(c for c in doc["contexts"] if isinstance(c, dict) and c.get("name") == chosen)
    namespace = (ctx.get("context") or {}).get("namespace") or "default"

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=str(path), context=chosen,
                                client_configuration=configuration, persist_config=False)
    except ConfigException as exc:
        raise MinikfError(f"kubeconfig {path}, context {chosen!r}: {exc}", 2) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MinikfError(f"kubeconfig {path}, context {chosen!r} is not usable: "
                          f"{type(exc).__name__}: {exc}", 2) from None
    return configuration, chosen, namespace


def _reason(exc: BaseException) -> str:
    """The innermost useful cause of a urllib3 error, in a few words."""
    import urllib3.exceptions as u3

    inner = getattr(exc, "reason", None) or exc
    if isinstance(inner, u3.NewConnectionError):  # before ConnectTimeoutError: urllib3 subclasses it
        text = str(inner).lower()
        if "refused" in text:
            return "connection refused"
        if "resolution" in text or "name or service" in text or "nodename" in text:
            return "host name does not resolve"
        if "timed out" in text:
            return "connection timed out"
        return str(inner).split(":")[-1].strip() or "cannot connect"
    if isinstance(inner, u3.ConnectTimeoutError) or isinstance(exc, u3.ConnectTimeoutError):
        return "connection timed out"
    if isinstance(inner, u3.ReadTimeoutError) or isinstance(exc, u3.ReadTimeoutError):
        return "no answer in time"
    if isinstance(inner, u3.SSLError):  # "[SSL: CODE] what went wrong (_ssl.c:1006)"
        import re

        found = re.search(r"\]\s*([^()]+?)\s*\(_ssl", str(inner))
        return f"TLS failed: {found.group(1) if found else 'handshake error'}"
    return str(inner).splitlines()[0] if str(inner) else type(inner).__name__


def api_call(cluster_or_client: Any, path: str, method: str = "GET", body: Any = None,
             timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """One call to the API server through the kubernetes client (its auth, TLS and proxy settings)."""
    api_client = getattr(cluster_or_client, "api_client", cluster_or_client)
    return api_client.call_api(
        path, method, body=body, response_type="object", auth_settings=["BearerToken"],
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        _return_http_data_only=True, _request_timeout=timeout_s, _preload_content=True,
    )


def connect(kubeconfig: str | os.PathLike | None, context: str | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> Cluster:
    """Load the kubeconfig (and context) and check the API server answers /version.

    Returns a Cluster; raises MinikfError with one line naming what is wrong otherwise.
    """
    import urllib3
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    path = _kubeconfig_path(kubeconfig)
    configuration, chosen, namespace = _load(path, context)
    configuration.retries = urllib3.Retry(total=0, connect=0, read=0, redirect=0)
    api_client = client.ApiClient(configuration)
    server = configuration.host
    where = f"{server} (kubeconfig {path}, context {chosen})"
    try:
        info = api_call(api_client, "/version", timeout_s=timeout_s)
    except ApiException as exc:
        api_client.close()
        if exc.status in (401, 403):
            raise MinikfError(f"the Kubernetes API server at {where} rejected the credentials "
                              f"(HTTP {exc.status}); refresh the kubeconfig's user", 3) from None
        raise MinikfError(f"the Kubernetes API server at {where} answered /version with HTTP "
                          f"{exc.status} {exc.reason}", 3) from None
    except urllib3.exceptions.HTTPError as exc:
        api_client.close()
        raise MinikfError(f"cannot reach the Kubernetes API server at {where}: {_reason(exc)}", 3) from None
    if not isinstance(info, dict) or "gitVersion" not in info:
        api_client.close()
        raise MinikfError(f"{where} answered /version but not as a Kubernetes API server "
                          f"(no gitVersion)", 3)
    return Cluster(api_client=api_client, kubeconfig=str(path), context=chosen, server=server,
                   version=str(info["gitVersion"]), namespace=namespace, timeout_s=timeout_s, info=info)


def missing_crds(cluster: Cluster, crds: list[Crd]) -> list[Crd]:
    """The CRDs whose group/version is not served or does not list the plural (API discovery).

    Discovery needs no RBAC beyond being authenticated, unlike reading CRD objects.
    """
    import urllib3
    from kubernetes.client.rest import ApiException

    served: dict[tuple[str, str], set[str] | None] = {}
    for crd in crds:
        key = (crd.group, crd.version)
        if key in served:
            continue
        try:
            doc = api_call(cluster, f"/apis/{crd.group}/{crd.version}", timeout_s=cluster.timeout_s)
            served[key] = {r.get("name") for r in doc.get("resources", []) if isinstance(r, dict)}
        except ApiException as exc:
            if exc.status != 404:
                raise MinikfError(f"API discovery of {crd.group}/{crd.version} on {cluster.server} "
                                  f"failed: HTTP {exc.status} {exc.reason}", 3) from None
            served[key] = None
        except urllib3.exceptions.HTTPError as exc:
            raise MinikfError(f"cannot reach the Kubernetes API server at {cluster.server}: "
                              f"{_reason(exc)}", 3) from None
    return [c for c in crds if c.plural not in (served[(c.group, c.version)] or set())]


def require_crds(cluster: Cluster, crds: list[Crd]) -> None:
    """Raise one line naming every missing CRD and the component that installs it."""
    missing = missing_crds(cluster, crds)
    if missing:
        names = ", ".join(f"{c.name}/{c.version} ({c.component})" for c in missing)
        raise MinikfError(f"the cluster at {cluster.server} lacks these CRDs: {names}; "
                          f"install those Kubeflow components (minikf up installs them)", 4)


def denied(cluster: Cluster, namespace: str, needs: list[Permission]) -> list[Permission]:
    """The permissions a SelfSubjectAccessReview says this user lacks in `namespace`."""
    import urllib3
    from kubernetes.client.rest import ApiException

    lacking = []
    for need in needs:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "namespace": namespace, "verb": need.verb, "group": need.group,
                "resource": need.resource, "subresource": need.subresource,
            }},
        }
        try:
            review = api_call(cluster, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                              method="POST", body=body, timeout_s=cluster.timeout_s)
        except ApiException as exc:
            raise MinikfError(f"cannot check permissions on {cluster.server}: SelfSubjectAccessReview "
                              f"answered HTTP {exc.status} {exc.reason}", 3) from None
        except urllib3.exceptions.HTTPError as exc:
            raise MinikfError(f"cannot reach the Kubernetes API server at {cluster.server}: "
                              f"{_reason(exc)}", 3) from None
        if not (review.get("status") or {}).get("allowed"):
            lacking.append(need)
    return lacking


def require_permissions(cluster: Cluster, namespace: str, needs: list[Permission]) -> None:
    """Raise one line naming every verb/resource RBAC denies in `namespace`."""
    lacking = denied(cluster, namespace, needs)
    if lacking:
        raise MinikfError(f"missing permissions in namespace {namespace!r} on {cluster.server}: "
                          f"{', '.join(map(str, lacking))}", 4)
