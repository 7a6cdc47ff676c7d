"""`minikf serve --model PATH`: a model behind KServe's ModelServer in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

from minikf.runtime.errors import MinikfError


def register(root: typer.Typer) -> None:
    root.command()(serve)


def serve(
    model: Path = typer.Option(..., "--model",
                               help="an ONNX model (.onnx file or a dir with one) or a trained model dir "
                                    "(model.pt + model.json)"),
    port: int = typer.Option(8080, help="HTTP port"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (0.0.0.0 exposes it to the network)"),
    name: str | None = typer.Option(None, help="model name in the URLs (default: fashion-mnist for a "
                                               "trained model dir, else the ONNX file's name)"),
    token: str | None = typer.Option(
        None, envvar="MINIKF_SERVE_TOKEN", help="bearer token required on every request"
    ),
) -> None:
    """Serve a model (KServe V1 and Open Inference Protocol V2) in the foreground."""
    from minikf.workload.served_model import ModelError, check_name, describe_model_path

    problem = describe_model_path(model)
    if problem:
        raise MinikfError(f"--model {problem}", exit_code=2)
    try:
        if name is not None:
            check_name(name)
        from minikf.workload.server import serve as run_server

        if not token:  # secure by default: never an open endpoint
            import secrets

            token = secrets.token_urlsafe(32)
            typer.echo(f"no --token given; requests need this bearer token (shown once): {token}", err=True)
        import os

        from minikf.runtime import running
        from minikf.workload.served_model import default_name

        entry = running.register("model", os.getpid(), f"http://{host}:{port}",
                                 model=name or default_name(model),
                                 model_dir=str(model.resolve()), platform="minikf serve")
        try:
            run_server(model, port, host=host, token=token, name=name)
        finally:
            running.unregister(entry)
    except ModelError as exc:
        raise MinikfError(str(exc), exit_code=2) from None
