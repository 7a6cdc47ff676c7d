"""The model server's HTTP front: token, limits, and every route of the served model.

Two ASGI layers in front of KServe's app:
- AuthAndLimits: the bearer token on every path (401/403) and the body size cap (413);
- ModelFront: the served model's routes, answered here without KServe's detour (FastAPI
  routing, pydantic, dataplane) and with the whole Open Inference Protocol:
    GET  /v2                                        server metadata (extensions)
    GET  /v2/models/M[/versions/V]                  model metadata (inputs, outputs, versions)
    GET  /v2/models/M[/versions/V]/ready            model ready
    POST /v2/models/M[/versions/V]/infer            V2 infer, JSON or binary tensor data
    POST /v1/models/M:predict                       V1 predict
  and, for inference, a bounded queue (503 with Retry-After when full), a deadline (504) and
  one log line per refused request (client errors never log a traceback).
Everything else (health, V1 model status, metrics) goes on to KServe.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

import orjson

from minikf.workload import oip
from minikf.workload.fast_infer import Batcher, DeadlineExceeded, Overloaded
from minikf.workload.oip import ProtocolError, error_body
from minikf.workload.served_model import InputError, ServedModel

log = logging.getLogger("minikf.serve")

JSON = b"application/json"
RETRY_AFTER_S = 1
OVERLOAD_LOG_EVERY_S = 5.0


async def _respond(send, status: int, body: bytes, content_type: bytes = JSON,
                   extra: list | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


class ClientError(Exception):
    def __init__(self, status: int, message: str, extra: list | None = None) -> None:
        super().__init__(message)
        self.status, self.extra = status, extra or []


async def read_body(receive, limit: int) -> bytes | None:
    """The whole request body under `limit` bytes (also chunked uploads); None on disconnect."""
    message = await receive()
    if message["type"] != "http.request":
        return None
    body = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body
    chunks, size = [body], len(body)
    while message.get("more_body", False):
        if size > limit:
            break
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
    if size > limit:
        raise ClientError(413, f"request body over {limit} bytes", [(b"connection", b"close")])
    return b"".join(chunks)


class AuthAndLimits:
    """ASGI middleware: bearer token on every path, a declared body over the cap -> 413."""

    def __init__(self, app, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or []
        auth = length = None
        for name, value in headers:
            if name == b"authorization":
                auth = value
            elif name == b"content-length":
                length = value
        if self.token is not None:
            if not auth:
                return await self._refuse(scope, send, 401, "missing bearer token",
                                          [(b"www-authenticate", b"Bearer")])
            scheme, _, given = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.token):
                return await self._refuse(scope, send, 403, "invalid token")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await self._refuse(scope, send, 400, "bad content-length header")
            if too_big:
                return await self._refuse(scope, send, 413, f"request body over {self.max_body} bytes",
                                          [(b"connection", b"close")])
        return await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope, send, status: int, message: str, extra: list | None = None) -> None:
        log.info("%d %s %s: %s", status, scope.get("method"), scope.get("path"), message)
        await _respond(send, status, error_body(message), extra=extra)


class ModelFront:
    """ASGI: the served model's V1/V2 routes (see the module doc); the rest goes to `app`."""

    def __init__(self, app, model: ServedModel, batcher: Batcher, max_body_bytes: int) -> None:
        self.app = app
        self.model = model
        self.batcher = batcher
        self.max_body = max_body_bytes
        self.v1_predict = f"/v1/models/{model.name}:predict"
        self.metadata = orjson.dumps(model.metadata())
        self.ready = orjson.dumps({"name": model.name, "ready": True})
        self.server = orjson.dumps({"name": "minikf", "version": _version(),
                                    "extensions": ["binary_tensor_data"]})
        self.overloaded = 0  # 503s not yet counted in the log
        self.overload_spell = False

    # -- routing -------------------------------------------------------------------------------
    def _route(self, method: str, path: str):
        """(handler, allowed method) for a path this layer answers, or None."""
        if path == "/v2":
            return self._server_metadata, "GET"
        if path.startswith("/v2/models/"):
            parts = path[len("/v2/models/"):].split("/")
            name, rest = parts[0], parts[1:]
            version = None
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = rest[1], rest[2:]
            if rest == []:
                return self._with(name, version, self._model_metadata), "GET"
            if rest == ["ready"]:
                return self._with(name, version, self._model_ready), "GET"
            if rest == ["infer"]:
                return self._with(name, version, self._infer_v2), "POST"
            return None
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            name = path[len("/v1/models/"):-len(":predict")]
            return self._with(name, None, self._predict_v1), "POST"
        return None

    def _with(self, name: str, version: str | None, handler):
        if name != self.model.name:
            return self._not_found(f"model {name!r} not found; this server serves {self.model.name!r}")
        if version is not None and version != self.model.version:
            return self._not_found(f"model {name!r} has no version {version!r} "
                                   f"(versions: {self.model.version})")
        return handler

    @staticmethod
    def _not_found(message: str):
        async def handler(scope, receive, send):
            raise ClientError(404, message)
        return handler

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = self._route(scope["method"], scope["path"])
        if route is None:
            return await self._pass_on(scope, receive, send)
        handler, allowed = route
        try:
            if scope["method"] != allowed:
                raise ClientError(405, f"{scope['method']} is not allowed on {scope['path']} "
                                       f"(use {allowed})", [(b"allow", allowed.encode())])
            await handler(scope, receive, send)
        except ClientError as exc:
            await self._client_error(scope, send, exc.status, str(exc), exc.extra)
        except (ProtocolError, InputError) as exc:
            await self._client_error(scope, send, getattr(exc, "status", 400), str(exc))
        except Overloaded as exc:
            self._count_overload()
            await _respond(send, 503, error_body(f"{exc}; retry after {RETRY_AFTER_S} s"),
                           extra=[(b"retry-after", b"%d" % RETRY_AFTER_S)])
        except DeadlineExceeded as exc:
            log.info("504 %s %s: %s", scope["method"], scope["path"], exc)
            await _respond(send, 504, error_body(str(exc)))
        except Exception as exc:  # the model failed: 500 with the reason, the server lives on
            log.error("500 %s %s: inference failed: %s", scope["method"], scope["path"], exc)
            await _respond(send, 500, error_body(f"inference failed: {exc}"))

    async def _pass_on(self, scope, receive, send):
        """KServe's routes, with the body cap enforced on chunked uploads too."""
        if scope.get("method") in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        try:
            body = await read_body(receive, self.max_body)
        except ClientError as exc:
            return await self._client_error(scope, send, exc.status, str(exc), exc.extra)
        if body is None:
            return None
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    @staticmethod
    async def _client_error(scope, send, status: int, message: str, extra: list | None = None):
        log.info("%d %s %s: %s", status, scope["method"], scope["path"], message)
        await _respond(send, status, error_body(message), extra=extra)

    def _count_overload(self) -> None:
        """A 503 is not logged one line per request: the first of a spell says the queue is full,
        then one line every few seconds counts the refusals while the spell lasts."""
        self.overloaded += 1
        if not self.overload_spell:
            self.overload_spell = True
            log.warning("503: queue full (limit %d): refusing requests", self.batcher.max_queue)
            asyncio.get_running_loop().call_later(OVERLOAD_LOG_EVERY_S, self._log_overload)

    def _log_overload(self) -> None:
        refused, self.overloaded = self.overloaded, 0
        if refused:
            log.warning("503: %d request(s) refused in the last %.0f s: queue full (limit %d)",
                        refused, OVERLOAD_LOG_EVERY_S, self.batcher.max_queue)
            asyncio.get_running_loop().call_later(OVERLOAD_LOG_EVERY_S, self._log_overload)
        else:
            self.overload_spell = False

    # -- handlers ------------------------------------------------------------------------------
    async def _server_metadata(self, scope, receive, send):
        await _respond(send, 200, self.server)

    async def _model_metadata(self, scope, receive, send):
        await _respond(send, 200, self.metadata)

    async def _model_ready(self, scope, receive, send):
        await _respond(send, 200, self.ready)

    async def _body(self, scope, receive) -> bytes | None:
        if self.batcher.full():  # before reading the body: a full queue costs no upload
            raise Overloaded(f"server busy: {self.batcher.queued} requests queued "
                             f"(limit {self.batcher.max_queue})")
        body = await read_body(receive, self.max_body)
        if body is None:
            return None
        encoding = _header(scope, b"content-encoding")
        if encoding:
            body = oip.decompress(body, encoding, self.max_body)
        return body

    async def _infer_v2(self, scope, receive, send):
        body = await self._body(scope, receive)
        if body is None:
            return
        request = oip.decode_request(body, _header(scope, oip.HEADER_LENGTH.encode()))
        feeds = self.model.feeds_v2(request.inputs)
        wanted = self.model.requested(None if request.outputs is None
                                      else [o.name for o in request.outputs])
        results = await self.batcher.run(feeds, request.timeout_s)
        arrays = self.model.named_outputs(results, wanted)
        if request.outputs is None:
            binary = [request.binary_output] * len(wanted)
        else:
            binary = [request.binary_output if o.binary is None else o.binary for o in request.outputs]
        data, header_length = oip.encode_response(
            self.model.name, self.model.version, request.id,
            [(s.name, s.datatype, a, b) for s, a, b in zip(wanted, arrays, binary, strict=True)])
        if header_length is None:
            await _respond(send, 200, data)
        else:
            await _respond(send, 200, data, b"application/octet-stream",
                           [(oip.HEADER_LENGTH.encode(), b"%d" % header_length)])

    async def _predict_v1(self, scope, receive, send):
        body = await self._body(scope, receive)
        if body is None:
            return
        feeds = self.model.feeds_v1(oip.parse_json(body))
        results = await self.batcher.run(feeds)
        predictions = self.model.v1_predictions(results)
        await _respond(send, 200, orjson.dumps({"predictions": predictions},
                                               option=orjson.OPT_SERIALIZE_NUMPY))


def _version() -> str:
    """minikf's installed version (the workload imports nothing else of minikf: it runs alone
    in containers and pods)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("minikf")
    except PackageNotFoundError:
        return "unknown"


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None

