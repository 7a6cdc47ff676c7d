"""A small HTTP API over every profile's runs and artifacts, with token auth, on 127.0.0.1.

    GET /api/profiles/<user>/runs                         the user's runs
    GET /api/profiles/<user>/runs/<run>                   that run's results.json
    GET /api/profiles/<user>/runs/<run>/artifacts/<path>  a file of that run
    GET /api/profiles/<user>/snapshots                    the user's snapshots (minikf snapshot)
    GET /api/profiles/<user>/snapshots/<id>               that snapshot's manifest

Every path needs `Authorization: Bearer <token>`: none -> 401; a token that is no one's, or
another user's -> 403 (like Kubeflow's per-namespace RBAC). Request lines are logged, never
headers, so tokens stay out of logs.

    python -m minikf.profiles.api --port N [--host 127.0.0.1]   (profiles from $MINIKF_HOME)
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import re
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from minikf.profiles.store import list_profiles, load_profile, minikf_home, user_for_token


def list_runs(runs_dir: Path) -> list[dict]:
    runs = []
    for run in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        results = run / "results.json"
        if not results.is_file():
            continue
        data = json.loads(results.read_text())
        runs.append({"run": run.name, "run_id": data.get("run_id"), "scenario": data.get("scenario"),
                     "status": data.get("status"), "started": data.get("started")})
    return runs


def list_snapshots(snapshots_dir: Path) -> list[dict]:
    """The manifests in a profile's snapshot store (minikf/snapshots), summarized, newest first."""
    found = []
    for path in sorted((snapshots_dir / "manifests").glob("snap-*.json")):
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        found.append({"id": m.get("id"), "kind": m.get("kind"), "created": m.get("created"),
                      "files": len(m.get("files", [])), "run": m.get("run", {}).get("run_id")})
    return sorted(found, key=lambda m: m.get("created") or "", reverse=True)


class ProfileAPIHandler(BaseHTTPRequestHandler):
    server_version = "minikf-profiles"
    home: Path = Path(".")

    def _reply(self, status: int, body: dict | list | bytes, content_type: str = "application/json",
               extra: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _caller(self) -> str | None:
        """The authenticated user, or None after replying 401/403."""
        auth = self.headers.get("Authorization", "")
        if not auth:
            self._reply(401, {"error": "missing bearer token"}, extra={"WWW-Authenticate": "Bearer"})
            return None
        scheme, _, token = auth.partition(" ")
        user = user_for_token(token.strip(), self.home) if scheme.lower() == "bearer" else None
        if user is None:
            self._reply(403, {"error": "invalid token"})
            return None
        return user

    def _authorized(self) -> list[str] | None:
        """The path's parts when the token is the owner's; None after replying 401/403/404."""
        caller = self._caller()
        if caller is None:
            return None
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if parts[:2] != ["api", "profiles"] or len(parts) < 4 or parts[3] not in ("runs", "snapshots"):
            self._reply(404, {"error": f"no such path {urlsplit(self.path).path}"})
            return None
        if parts[2] != caller:
            self._reply(403, {"error": f"profile {caller} may not read profile {parts[2]}"})
            return None
        return parts

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = self._authorized()
        if parts is None:
            return
        owner = parts[2]
        if parts[3] == "snapshots":
            return self._snapshots(owner, parts[4:])
        runs_dir = load_profile(owner, self.home).runs_dir
        if len(parts) == 4:
            return self._reply(200, list_runs(runs_dir))
        run_dir = runs_dir / parts[4]
        if parts[4] in ("", ".", "..") or not (run_dir / "results.json").is_file():
            return self._reply(404, {"error": f"profile {owner} has no run {parts[4]!r}"})
        if len(parts) == 5:
            return self._reply(200, (run_dir / "results.json").read_bytes())
        if parts[5] != "artifacts" or len(parts) < 7:
            return self._reply(404, {"error": "expected .../runs/<run>/artifacts/<path>"})
        return self._artifact(run_dir, "/".join(parts[6:]))

    def _snapshots(self, owner: str, rest: list[str]) -> None:
        store = load_profile(owner, self.home).snapshots_dir
        if not rest:
            return self._reply(200, list_snapshots(store))
        manifest = store / "manifests" / f"{rest[0]}.json"
        if len(rest) > 1 or not re.fullmatch(r"snap-[0-9a-f]{12}", rest[0]) or not manifest.is_file():
            return self._reply(404, {"error": f"profile {owner} has no snapshot {'/'.join(rest)!r}"})
        return self._reply(200, manifest.read_bytes())

    def _artifact(self, run_dir: Path, relative: str) -> None:
        target = (run_dir / relative).resolve()
        if not target.is_relative_to(run_dir.resolve()) or not target.is_file():
            return self._reply(404, {"error": f"no artifact {relative!r} in run {run_dir.name}"})
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return self._reply(200, target.read_bytes(), content_type=kind)

    def do_POST(self) -> None:  # noqa: N802
        if self._authorized() is not None:
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "this API is read-only"})

    do_PUT = do_PATCH = do_DELETE = do_POST  # noqa: N815

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def make_server(port: int, host: str = "127.0.0.1", home: Path | None = None) -> ThreadingHTTPServer:
    handler = type("Handler", (ProfileAPIHandler,), {"home": minikf_home(home)})
    return ThreadingHTTPServer((host, port), handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minikf.profiles.api")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (0.0.0.0 exposes it to the network)")
    args = parser.parse_args(argv)
    server = make_server(args.port, args.host)
    print(f"profiles API on http://{args.host}:{args.port} for "
          f"{len(list_profiles(server.RequestHandlerClass.home))} profile(s)", flush=True)
    serve_until_interrupted(server)


def serve_until_interrupted(server) -> None:
    """Serve until Ctrl-C, then close the listening socket (the CLI and `python -m` both use it)."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
