"""A directory served over HTTP on loopback behind a bearer token: the smoke scenario's service.

`python -m http.server` has no authentication; this is the same handler with the token check every
minikf endpoint has (401 without a token, 403 with a wrong one). The token comes from the
environment (MINIKF_SERVE_TOKEN), never from the command line, so it does not show in `ps`.
"""

from __future__ import annotations

import argparse
import functools
import hmac
import os
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

TOKEN_ENV = "MINIKF_SERVE_TOKEN"


class TokenHandler(SimpleHTTPRequestHandler):
    token = ""

    def send_head(self):
        given = self.headers.get("Authorization", "")
        if not given.startswith("Bearer "):
            self.send_error(401, "missing bearer token")
            return None
        if not hmac.compare_digest(given[len("Bearer "):].strip().encode(), self.token.encode()):
            self.send_error(403, "invalid token")
            return None
        return super().send_head()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minikf.workload.file_server")
    parser.add_argument("port", type=int)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--directory", default=os.getcwd())
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        parser.error(f"no token: set {TOKEN_ENV}")
    handler = type("Handler", (TokenHandler,), {"token": token})
    server = ThreadingHTTPServer((args.bind, args.port),
                                 functools.partial(handler, directory=args.directory))
    with server:
        server.serve_forever()


if __name__ == "__main__":
    main()
