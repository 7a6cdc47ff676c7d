"""`minikf notebooks ...`: a JupyterLab server per user on 127.0.0.1 with a token, and `compile`:
an annotated notebook to a Kubeflow pipeline with Kale."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True,
                  help="A Jupyter server per user (127.0.0.1, token); notebooks to pipelines (Kale).")

HOME_HELP = "profiles home (default $MINIKF_HOME, else ~/.minikf)"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="notebooks")


@app.command("start")
def start_cmd(
    user: str = typer.Option(..., "--user", "-u", help="the profile whose server this is"),
    port: int = typer.Option(0, help="HTTP port (0: a free one)"),
    home: Path | None = typer.Option(None, help=HOME_HELP),
) -> None:
    """Start the user's JupyterLab in their work dir, under their quota; prints its URL once."""
    from minikf.notebooks.server import start_notebook
    from minikf.profiles.store import load_profile

    profile = load_profile(user, home)
    server, token = start_notebook(profile, port or None)
    typer.echo(f"notebook server for {user}: {server.url}/lab (pid {server.pid})")
    typer.echo(f"token (also in {server.token_file}, 0600): {token}")
    typer.echo(f"open {server.url}/lab?token={token}   stop: minikf notebooks stop --user {user}")


@app.command("list")
def list_cmd(home: Path | None = typer.Option(None, help=HOME_HELP)) -> None:
    """Running notebook servers (never their tokens)."""
    from minikf.notebooks.server import list_notebooks

    servers = list_notebooks(home)
    if not servers:
        typer.echo("no notebook servers running")
        return
    typer.echo(f"{'user':16} {'pid':>7}  url")
    for server in servers:
        typer.echo(f"{server.user:16} {server.pid:>7}  {server.url}/lab")


@app.command("stop")
def stop_cmd(
    user: str = typer.Option(None, "--user", "-u", help="whose server (default: all)"),
    home: Path | None = typer.Option(None, help=HOME_HELP),
) -> None:
    """Stop a user's server (or every one) and its kernels; its token is removed."""
    from minikf.notebooks.server import stop_notebook
    from minikf.profiles.store import list_profiles, load_profile

    profiles = [load_profile(user, home)] if user else list_profiles(home)
    stopped = [s for p in profiles if (s := stop_notebook(p)) is not None]
    for server in stopped:
        typer.echo(f"stopped {server.user}'s server on {server.url} (pid {server.pid})")
    if not stopped:
        typer.echo("no notebook server was running" + (f" for {user}" if user else ""))


@app.command("compile")
def compile_cmd(
    notebook: Path = typer.Argument(..., help="a notebook annotated with Kale's cell tags"),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="the KFP IR YAML to write (default: ./NOTEBOOK.yaml)"),
    image: str | None = typer.Option(None, help="the steps' image (default $MINIKF_RUNTIME_IMAGE, "
                                     "else minikf/runtime:latest)"),
    json_out: bool = typer.Option(False, "--json", help="a JSON summary as the last line"),
) -> None:
    """Turn an annotated notebook into a Kubeflow pipeline with Kale (KFP IR YAML, checked by
    loading it back with kfp and compiling it again)."""
    import json

    from minikf.pipelines.kale import compile_notebook

    target = output or Path(f"{notebook.stem}.yaml")
    compiled = compile_notebook(notebook, target, image)
    typer.echo(f"wrote {compiled.package}: pipeline {compiled.pipeline_name}")
    for name, step in compiled.steps.items():
        after = f" after {', '.join(step['prev'])}" if step["prev"] else ""
        takes = f", takes {', '.join(step['inputs'])}" if step["inputs"] else ""
        typer.echo(f"  step {name}{after}{takes}")
    typer.echo("  parameters: " + ", ".join(f"{k}={v!r}" for k, v in compiled.parameters.items()))
    typer.echo(f"  metrics: {', '.join(compiled.metrics) or 'none'}")
    if json_out:
        typer.echo(json.dumps({"steps": len(compiled.steps), "parameters": len(compiled.parameters),
                               "pipeline_metrics": len(compiled.metrics), "round_trip": 1,
                               "package_file": str(compiled.package)}))
