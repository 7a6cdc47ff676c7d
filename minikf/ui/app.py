"""The dashboard as a Starlette app (kserve's server stack), served by uvicorn on 127.0.0.1.

Every path needs the token: as `Authorization: Bearer TOKEN`, or the session cookie that
POST /login (body {"token": ...}) sets. Without either the answer is 401 (for a browser: a
sign-in page that reads the token from the URL's #fragment, which is never sent nor logged);
a wrong token is 403. Only GET and HEAD read; nothing writes, except the session cookie.
"""

from __future__ import annotations

import hmac
import mimetypes
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from minikf.metadata.report import final_models
from minikf.notebooks.server import list_notebooks
from minikf.runtime import running
from minikf.ui import catalog, pages

COOKIE = "minikf_ui"
SCAN_TTL_S = 2.0
ASSETS = Path(__file__).parent / "assets"
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self' 'unsafe-inline' data:; "
                                       "connect-src 'self'; frame-ancestors 'none'"}


@dataclass
class Settings:
    token: str
    dirs: list[Path]
    db: Path | None = None
    home: Path | None = None
    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1", "localhost"])
    sessions: set[str] = field(default_factory=set)


def _answer(request: Request, status: int, message: str) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(pages.login_page(), status, headers=_HEADERS)
    extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse({"error": message}, status, headers={**_HEADERS, **extra})


class TokenMiddleware:
    """401 without credentials, 403 with a wrong token; /login alone is open (and only POST)."""

    def __init__(self, app, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        if scope["path"] == "/login" and request.method == "POST":
            return await self.app(scope, receive, send)
        verdict = self._verdict(request)
        if verdict is not None:
            return await verdict(scope, receive, send)
        await self.app(scope, receive, send)

    def _verdict(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.settings.token):
                return None
            return _answer(request, 403, "invalid token")
        if request.cookies.get(COOKIE) in self.settings.sessions:
            return None
        return _answer(request, 401, "missing token")


def _safe_file(root: Path, relative: str) -> Path | None:
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        return None
    if target.is_dir():
        target = target / "index.html" if (target / "index.html").is_file() else target
    return target if target.is_file() else None


def _file(root: Path, relative: str) -> Response:
    target = _safe_file(root, relative or "index.html")
    if target is None:
        folder = (root / relative).resolve()
        if folder.is_dir() and folder.is_relative_to(root.resolve()):
            links = "".join(
                f'<li><a href="{quote(p.name)}{"/" if p.is_dir() else ""}">{escape(p.name)}</a></li>'
                for p in sorted(folder.iterdir()))
            return HTMLResponse(pages.layout(relative, f"<h1>{escape(relative)}</h1><ul>{links}</ul>"),
                                headers=_HEADERS)
        return JSONResponse({"error": f"no file {relative!r}"}, 404, headers=_HEADERS)
    kind = mimetypes.guess_type(target.name)[0] or "text/plain"
    if target.suffix == ".log":
        kind = "text/plain"
    if kind == "text/html":
        return HTMLResponse(pages.with_nav(target.read_text(errors="replace")), headers=_HEADERS)
    return Response(target.read_bytes(), media_type=kind, headers=_HEADERS)


def make_app(settings: Settings) -> Starlette:
    cache: dict[str, tuple[float, catalog.Catalog]] = {}

    def scan() -> catalog.Catalog:
        """What the dirs and the store hold, looked at again after SCAN_TTL_S (a page's
        images and logs then cost one scan, and a new run shows within seconds)."""
        now = time.monotonic()
        if "last" not in cache or now - cache["last"][0] > SCAN_TTL_S:
            cache["last"] = (now, catalog.scan(settings.dirs, settings.db))
        return cache["last"][1]

    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status, headers=_HEADERS)

    async def login(request: Request) -> Response:
        try:
            token = str((await request.json()).get("token", ""))
        except ValueError:
            token = ""
        if not hmac.compare_digest(token, settings.token):
            return JSONResponse({"error": "invalid token"}, 403, headers=_HEADERS)
        session = secrets.token_urlsafe(32)
        settings.sessions.add(session)
        response = Response(status_code=204, headers=_HEADERS)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/")
        return response

    async def runs(request: Request) -> Response:
        return html(pages.runs_page(scan(), dict(request.query_params)))

    async def api_runs(request: Request) -> Response:
        return JSONResponse([{"run_id": r.run_id, "scenario": r.scenario, "platform": r.platform,
                              "status": r.status, "started": r.started, "duration_s": r.duration_s,
                              "bundle": r.bundle, "has_report": r.path is not None}
                             for r in scan().sorted_runs()], headers=_HEADERS)

    async def run_file(request: Request) -> Response:
        run_id, rest = request.path_params["run_id"], request.path_params.get("rest", "")
        entry = scan().runs.get(run_id)
        if entry is None:
            return html(pages.layout("no such run", f"<h1>No run {escape(run_id)}</h1>"), 404)
        if entry.path is None:
            return html(pages.record_page(entry))
        return _file(entry.path, rest or "report.html")

    async def bundle_file(request: Request) -> Response:
        bundle = scan().bundles.get(request.path_params["name"])
        if bundle is None:
            return html(pages.layout("no such bundle", "<h1>No such bundle</h1>"), 404)
        return _file(bundle.path, request.path_params.get("rest", ""))

    async def bundles(request: Request) -> Response:
        return html(pages.bundles_page(scan()))

    async def compare(request: Request) -> Response:
        found = scan().runs
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if a not in found or b not in found:
            return html(pages.layout("compare", "<h1>Compare</h1><p>Pick two runs (A and B) on "
                                                "<a href='/'>the runs page</a>.</p>"), 400)
        return html(pages.compare_page(found[a], found[b]))

    async def lineage(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        record = catalog.store_record(run_id, settings.db)
        if record is None:
            return html(pages.layout(
                "lineage", f"<h1>No run {escape(run_id)} in the lineage store</h1>"), 404)
        model = next((a for a in final_models(record) if a.name.endswith("model.pt")), None)
        producers = catalog.runs_with_model(model.sha256, settings.db) if model else []
        graph = pages.lineage_graph(record, producers, scan().runs, running.running("model"))
        return html(pages.lineage_page(record, graph))

    async def now(request: Request) -> Response:
        return html(pages.running_page(running.running("model"), list_notebooks(settings.home)))

    async def asset(request: Request) -> Response:
        target = _safe_file(ASSETS, request.path_params["name"])
        if target is None or target.suffix != ".js":
            return JSONResponse({"error": "no such asset"}, 404, headers=_HEADERS)
        return Response(target.read_bytes(), media_type="text/javascript",
                        headers={**_HEADERS, "Cache-Control": "max-age=3600"})

    routes = [
        Route("/", runs), Route("/login", login, methods=["POST"]),
        Route("/api/runs", api_runs), Route("/bundles", bundles), Route("/compare", compare),
        Route("/running", now), Route("/lineage/{run_id}", lineage),
        Route("/assets/{name}", asset),
        Route("/runs/{run_id}/", run_file), Route("/runs/{run_id}/{rest:path}", run_file),
        Route("/bundles/{name}/", bundle_file), Route("/bundles/{name}/{rest:path}", bundle_file),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=settings.hosts),
                  Middleware(TokenMiddleware, settings=settings)]
    return Starlette(routes=routes, middleware=middleware)
