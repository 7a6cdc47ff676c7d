"""A fake Kubernetes API server on 127.0.0.1, for what the shared real cluster cannot show.

The kubernetes platform is tested against the real API server (tests/kube/real_cluster.py). A few
tests need a cluster that the shared one must not be turned into: one serving only some of the
Kubeflow CRDs (CRDs are cluster-wide), or one with Kubeflow controller Deployments or DaemonSets
in the cluster-wide kubeflow, kubeflow-system, cert-manager, istio-system or kube-system
namespaces (every other test's discovery would find them). For those, this real HTTP server
plays only what minikf's client touches there: /version, API discovery (/api, /apis,
/apis/<group>/<version>), SelfSubjectAccessReview (every verb allowed), a Namespace's read, and
create/get/list/delete of namespaced objects (stored as sent in `objects`; no controller acts on
them). It checks the bearer token on every request, like an API server does.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "fake-apiserver-token"
NOT_FOUND = "the server could not find the requested resource"

OBJECT_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/namespaces/"
                         r"(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$")


def _key(match: re.Match, name: str | None = None) -> tuple[str, str, str, str]:
    return (match["group"] or "", match["ns"], match["plural"], name or match["name"])


def _selected(obj: dict, selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    pairs = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(k) == v for k, v in pairs)


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet handler that answers JSON documents; the fake servers' handlers extend it."""

    def log_message(self, *args) -> None:  # quiet test output
        pass

    def _send(self, code: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class FakeApiServer:
    """State the handler serves; tests set `crds` and `objects`, and read `requests`."""

    crds: set[tuple[str, str, str]] = field(default_factory=set)  # (group, version, plural)
    git_version: str = "v1.31.0-fake"
    objects: dict[tuple[str, str, str, str], dict] = field(default_factory=dict)  # (group, ns, plural, name)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def __enter__(self) -> FakeApiServer:
        state = self

        class Handler(JsonHandler):
            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": reason, "message": message, "code": code})

            def _authorized(self) -> bool:
                state.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._status(401, "Unauthorized", "Unauthorized")
                    return False
                return True

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if not self._authorized():
                    return
                path = self.path.split("?")[0]
                if path == "/version":
                    return self._send(200, {"major": "1", "minor": "31", "gitVersion": state.git_version})
                if path == "/api":
                    return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
                if path == "/apis":
                    groups = sorted({(g, v) for g, v, _ in state.crds})
                    return self._send(200, {"kind": "APIGroupList", "groups": [
                        {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}]}
                        for g, v in groups]})
                match = re.match(r"^/apis/([^/]+)/([^/]+)$", path)
                if match:
                    group, version = match.groups()
                    plurals = sorted(p for g, v, p in state.crds if (g, v) == (group, version))
                    if not plurals:
                        return self._status(404, "NotFound", NOT_FOUND)
                    return self._send(200, {"kind": "APIResourceList", "groupVersion": f"{group}/{version}",
                                            "resources": [{"name": p, "namespaced": True, "kind": p,
                                                           "verbs": ["create", "get", "delete"]}
                                                          for p in plurals]})
                match = re.match(r"^/api/v1/namespaces/([^/]+)$", path)
                if match:  # a Namespace itself: stored under ("", "", "namespaces", name)
                    found = state.objects.get(("", "", "namespaces", match.group(1)))
                    if found is None:
                        return self._status(404, "NotFound", f"namespaces {match.group(1)!r} not found")
                    return self._send(200, found)
                match = OBJECT_PATH.match(path)
                if match and not match["name"]:
                    query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
                    from urllib.parse import unquote

                    selector = unquote(query.get("labelSelector", ""))
                    items = [o for (g, ns, plural, _), o in sorted(state.objects.items())
                             if (g, ns, plural) == _key(match)[:3] and _selected(o, selector)]
                    return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {},
                                            "items": items})
                if match and match["name"]:
                    key = _key(match)
                    if key not in state.objects:
                        return self._status(404, "NotFound", f"{match['plural']} {match['name']!r} not found")
                    return self._send(200, state.objects[key])
                return self._status(404, "NotFound", NOT_FOUND)

            def do_POST(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                path = self.path.split("?")[0]
                body = self._body()
                if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
                    return self._send(201, {**body, "status": {"allowed": True}})
                match = OBJECT_PATH.match(path)
                if match and not match["name"]:
                    custom = (match["group"], match["version"], match["plural"])
                    if not match["core"] and custom not in state.crds:
                        return self._status(404, "NotFound", NOT_FOUND)
                    name = body.get("metadata", {}).get("name")
                    key = _key(match, name)
                    if key in state.objects:
                        return self._status(409, "AlreadyExists", f"{match['plural']} {name!r} exists")
                    body.setdefault("metadata", {})["namespace"] = match["ns"]
                    state.objects[key] = body
                    return self._send(201, body)
                return self._status(404, "NotFound", NOT_FOUND)

            def do_DELETE(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                match = OBJECT_PATH.match(self.path.split("?")[0])
                if match and match["name"] and state.objects.pop(_key(match), None) is not None:
                    return self._send(200, {"kind": "Status", "status": "Success"})
                return self._status(404, "NotFound", "not found")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def kubeconfig(self, directory: Path, token: str = TOKEN, namespace: str = "team") -> Path:
        """A kubeconfig file pointing at this server with a token user."""
        path = directory / "kubeconfig.yaml"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester",
                                                      "namespace": namespace}}],
        }))
        return path
