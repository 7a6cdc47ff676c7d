"""`minikf ui`: a local, read-only dashboard over results dirs and the lineage store.

catalog (what runs and bundles exist), pages (the HTML), app (the Starlette app and its token
check), serve (uvicorn on 127.0.0.1 until Ctrl-C).
"""

from __future__ import annotations

from pathlib import Path


def default_dirs(home: Path | None = None) -> list[Path]:
    """./results and every profile's runs dir."""
    from minikf.profiles.store import list_profiles

    return [Path("results"), *(p.runs_dir for p in list_profiles(home))]


def listen(host: str, port: int):
    """The listening socket, or one clear error (a port in use, a host not on this machine)."""
    import socket

    from minikf.runtime.errors import MinikfError

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MinikfError(f"cannot listen on {host}:{port}: {exc.strerror}", exit_code=2) from None
    sock.listen(128)
    return sock


def serve(settings, host: str = "127.0.0.1", port: int = 8765, ready=None) -> None:
    """Serve the dashboard until interrupted; `ready(port)` is called once it listens."""
    import uvicorn

    from minikf.ui.app import make_app

    sock = listen(host, port)
    config = uvicorn.Config(make_app(settings), log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    if ready is not None:
        original = server.startup

        async def startup(sockets=None):
            await original(sockets)
            if server.started:
                ready(sock.getsockname()[1])
        server.startup = startup
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
