"""Serve a model with KServe's ModelServer: V1 and the Open Inference Protocol (V2).

    python -m minikf.workload.server --model-dir PATH --port N [--host H] [--name NAME] [limits]

PATH is an ONNX model (a .onnx file or a directory with one) or the journey's model directory
(model.pt + model.json, and its model.onnx when current). The token is better given in the
environment (MINIKF_SERVE_TOKEN) so it does not show in `ps`; it is never logged.

KServe runs the server (uvicorn, its health and model-status routes, the model registry); the
model's own routes, the token and the limits are minikf's layers in front of KServe's app
(minikf/workload/front.py), over uvicorn's httptools protocol with read timeouts and a header
size limit (minikf/workload/http_limits.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import kserve

from minikf.workload.fast_infer import Batcher
from minikf.workload.served_model import ModelError, ServedModel, open_model

DEFAULT_MAX_BODY = 8 * 1024 * 1024
TOKEN_ENV = "MINIKF_SERVE_TOKEN"

log = logging.getLogger("minikf.serve")


@dataclass
class Limits:
    """How much the server takes on: what is refused, and when."""

    max_body_bytes: int = DEFAULT_MAX_BODY  # 413 above
    max_batch: int = 256  # items per request; 400 above
    # Inference requests queued or running; 503 + Retry-After above. Up to 32 clients at once are
    # never refused; under 200 connections a queue of 32 kept the p99 near 60 ms where 64 let it
    # reach 300-500 ms (bench serve's burst, 2 cores), at the same throughput.
    max_queue: int = 32
    deadline_s: float = 10.0  # a request that waited this long for the model: 504, not run
    header_timeout_s: float = 10.0  # request line + headers, from its first byte; 408 after
    body_timeout_s: float = 30.0  # body, from the end of the headers; 408 after
    max_header_bytes: int = 16 * 1024  # request line + headers; 431 above


class KServeEntry(kserve.Model):
    """The served model in KServe's registry, for its health and model-status routes and its
    metadata; every inference route is answered by the front (minikf/workload/front.py)."""

    def __init__(self, served: ServedModel) -> None:
        super().__init__(served.name)
        self.served = served
        self.ready = True

    def load(self) -> bool:
        self.ready = True
        return True

    def get_input_types(self) -> list[dict]:
        return self.served.kserve_types()[0]

    def get_output_types(self) -> list[dict]:
        return self.served.kserve_types()[1]


def _log_to_stderr() -> None:
    """This server's own lines (start, refused requests) beside KServe's, one per event."""
    log.disabled = False
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _one_line_handlers(app) -> None:
    """KServe logs a traceback for every 4xx it answers; a client's mistake is one line."""
    from fastapi.responses import ORJSONResponse
    from kserve.errors import InvalidInput, ModelNotFound, UnsupportedProtocol

    def handler(status: int):
        async def handle(request, exc):
            log.info("%d %s %s: %s", status, request.method, request.url.path, exc)
            return ORJSONResponse(status_code=status, content={"error": str(exc)})
        return handle

    for exc_class, status in ((InvalidInput, 400), (ModelNotFound, 404), (UnsupportedProtocol, 400),
                              (NotImplementedError, 501)):
        app.exception_handlers[exc_class] = handler(status)


def _http_protocol(config, limits: Limits) -> None:
    try:
        from minikf.workload.http_limits import guarded_protocol
    except ImportError as exc:  # no httptools: h11 has a header size limit, no read timeouts
        log.warning("httptools unavailable (%s): h11 without header/body read timeouts", exc)
        config.http = "h11"
        config.h11_max_incomplete_event_size = limits.max_header_bytes
        return
    config.http = guarded_protocol(limits.header_timeout_s, limits.body_timeout_s,
                                   limits.max_header_bytes)


def serve(model_path: str | Path, port: int, host: str = "127.0.0.1", token: str | None = None,
          name: str | None = None, limits: Limits | None = None,
          max_body_bytes: int | None = None) -> None:
    """Run the server in the foreground until interrupted."""
    from kserve import model_server

    from minikf.workload.front import AuthAndLimits, ModelFront

    _log_to_stderr()
    limits = limits or Limits()
    if max_body_bytes is not None:
        limits.max_body_bytes = max_body_bytes
    served = open_model(model_path, name, max_batch=limits.max_batch)
    batcher = Batcher(served, max_queue=limits.max_queue, deadline_s=limits.deadline_s)

    class HostRESTServer(model_server.RESTServer):
        # kserve's RESTServer hard-codes uvicorn's host to "0.0.0.0" (all interfaces) and
        # offers no option for it; a local model server must not be reachable from the network
        # by default, so we set the host on the uvicorn Config before the server starts.
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.config.host = host
            _http_protocol(self.config, limits)

        def create_application(self):
            # Outermost: token and body cap, then the model's routes, then KServe's own app.
            super().create_application()
            _one_line_handlers(model_server.app)
            access = logging.getLogger("uvicorn.access")  # a line per request costs more than the model
            access.handlers, access.propagate = [], False
            self.config.app = AuthAndLimits(
                ModelFront(model_server.app, served, batcher, limits.max_body_bytes),
                token=token or None, max_body_bytes=limits.max_body_bytes)

    model_server.RESTServer = HostRESTServer
    log.info("serving %s from %s on http://%s:%d (auth %s, runtime %s, inputs %s, outputs %s)",
             served.name, model_path, host, port, "on" if token else "off", served.runtime.platform,
             ", ".join(s.describe() for s in served.inputs),
             ", ".join(s.describe() for s in served.outputs))
    server = kserve.ModelServer(http_port=port, enable_grpc=False, workers=1)
    _log_to_stderr()  # again: KServe's logging config disables the loggers that existed before it
    server.start([KServeEntry(served)])
    # Stopped (SIGTERM/SIGINT) and drained: skip the interpreter's teardown of torch, onnxruntime
    # and kserve, which took 2-3 s here and made every run's cleanup wait for it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def warm_up() -> None:
    """What serving imports on first use, done ahead when this server is started warm
    (minikf/platforms/warm.py)."""
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    from kserve import model_server  # noqa: F401

    from minikf.workload import front, http_limits  # noqa: F401


def limit_arguments(parser: argparse.ArgumentParser) -> None:
    d = Limits()
    parser.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                        help="largest request body (413 above)")
    parser.add_argument("--max-batch", type=int, default=d.max_batch, help="items per request")
    parser.add_argument("--max-queue", type=int, default=d.max_queue,
                        help="inference requests queued or running; 503 with Retry-After above")
    parser.add_argument("--deadline", type=float, default=d.deadline_s,
                        help="seconds a request may wait for the model (504 after, not run)")
    parser.add_argument("--header-timeout", type=float, default=d.header_timeout_s,
                        help="seconds for a request's line and headers (408 after)")
    parser.add_argument("--body-timeout", type=float, default=d.body_timeout_s,
                        help="seconds for a request's body after its headers (408 after)")
    parser.add_argument("--max-header-bytes", type=int, default=d.max_header_bytes,
                        help="request line + headers (431 above)")


def limits_from(args: argparse.Namespace) -> Limits:
    for option in ("max_body_bytes", "max_batch", "max_queue", "deadline", "header_timeout",
                   "body_timeout", "max_header_bytes"):
        if getattr(args, option) <= 0:
            raise ValueError(f"--{option.replace('_', '-')} must be > 0, got {getattr(args, option)}")
    return Limits(args.max_body_bytes, args.max_batch, args.max_queue, args.deadline,
                  args.header_timeout, args.body_timeout, args.max_header_bytes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minikf.workload.server")
    # Not `--model`: kserve parses sys.argv on import and would take it for `--model_name`.
    parser.add_argument("--model-dir", dest="model", required=True,
                        help="an .onnx file, a directory with one, or model.pt + model.json")
    parser.add_argument("--name", default=None,
                        help="model name in the URLs (default: fashion-mnist for the journey's "
                             "model, else the ONNX file's name)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default=None, help=f"bearer token (prefer env {TOKEN_ENV})")
    parser.add_argument("--no-auth", action="store_true",
                        help="serve without a token (secure default: a token is required)")
    limit_arguments(parser)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV) or args.token
    if not token and not args.no_auth:
        parser.error(f"no token: set {TOKEN_ENV} (or --token); --no-auth serves an open endpoint")
    try:
        limits = limits_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve(args.model, args.port, host=args.host, token=token, name=args.name, limits=limits)
    except ModelError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")


if __name__ == "__main__":
    main()
