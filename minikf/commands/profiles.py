"""`minikf profiles ...`: users with private work dirs, tokens and quotas; runs as a user; the API."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="User profiles: work dirs, tokens, quotas, runs.")

HOME_HELP = "profiles home (default $MINIKF_HOME, else ~/.minikf)"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="profiles")


@app.command("create")
def create_cmd(
    name: str = typer.Argument(..., help="lower-case letters, digits and '-'"),
    cpus: int = typer.Option(2, help="CPU cores the user's processes may use"),
    memory_mb: int = typer.Option(4096, help="address-space limit per process, MiB"),
    max_runs: int = typer.Option(2, help="runs at the same time"),
    home: Path | None = typer.Option(None, help=HOME_HELP),
) -> None:
    """Create a profile; its token is printed once (and kept 0600 in the profile dir)."""
    from pydantic import ValidationError

    from minikf.profiles.store import Quota, create_profile
    from minikf.runtime.errors import MinikfError

    try:
        quota = Quota(cpus=cpus, memory_mb=memory_mb, max_runs=max_runs)
    except ValidationError as exc:
        problems = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise MinikfError(problems, exit_code=2) from None
    profile, token = create_profile(name, quota, home=home)
    typer.echo(f"profile {profile.name} created in {profile.dir}")
    typer.echo(f"quota: {quota.cpus} CPU(s), {quota.memory_mb} MiB per process, {quota.max_runs} run(s)")
    typer.echo(f"token (shown once; also in {profile.token_file}): {token}")


@app.command("list")
def list_cmd(home: Path | None = typer.Option(None, help=HOME_HELP)) -> None:
    """List profiles and their quotas (never their tokens)."""
    from minikf.notebooks.server import find_notebook
    from minikf.profiles.store import list_profiles

    profiles = list_profiles(home)
    if not profiles:
        typer.echo("no profiles; create one with `minikf profiles create NAME`")
        return
    typer.echo(f"{'name':16} {'cpus':>4} {'memory_mb':>9} {'max_runs':>8}  notebook")
    for p in profiles:
        server = find_notebook(p)
        typer.echo(f"{p.name:16} {p.quota.cpus:>4} {p.quota.memory_mb:>9} {p.quota.max_runs:>8}  "
                   f"{server.url if server else '-'}")


@app.command("delete")
def delete_cmd(
    name: str,
    yes: bool = typer.Option(False, "--yes", help="do not ask"),
    home: Path | None = typer.Option(None, help=HOME_HELP),
) -> None:
    """Delete a profile, its work dir and runs (its notebook server is stopped first)."""
    from minikf.notebooks.server import stop_notebook
    from minikf.profiles.store import delete_profile, load_profile

    profile = load_profile(name, home)
    if not yes:
        typer.confirm(f"delete profile {name} and everything in {profile.dir}?", abort=True)
    typer.echo(f"deleted {delete_profile(name, home, before=stop_notebook)}")


@app.command("run")
def run_cmd(
    user: str = typer.Argument(..., help="the profile to run as"),
    scenario: str = typer.Argument(..., help="a scenario name or a path to its YAML"),
    platform: str = typer.Option("local", help="local | docker | kubernetes"),
    param: list[str] = typer.Option([], "--param", "-p", help="key=value, repeatable"),
    home: Path | None = typer.Option(None, help=HOME_HELP),
    quiet: bool = typer.Option(False, help="plain lines even on a terminal"),
) -> None:
    """Run a scenario as a user: quota-checked, results in the user's runs dir."""
    from minikf.commands.common import parse_params, resolve_scenario
    from minikf.commands.progress import Progress
    from minikf.engine.runner import run_scenario
    from minikf.platforms import get_platform
    from minikf.profiles.runs import run_as
    from minikf.profiles.store import load_profile
    from minikf.scenario import load_scenario

    profile = load_profile(user, home)
    loaded = load_scenario(resolve_scenario(scenario))
    typer.echo(f"Running {loaded.name} as {profile.name} ...", err=True)
    result, results = run_as(profile, loaded, get_platform(platform), run_scenario,
                             parse_params(param), Progress(quiet))
    typer.echo(f"{loaded.name}: {result.status}. {result.message}".rstrip(), err=True)
    typer.echo(f"Results: {results / 'report.html'}", err=True)
    raise typer.Exit(0 if result.ok else 1)


@app.command("api")
def api_cmd(
    port: int = typer.Option(8700, help="HTTP port"),
    host: str = typer.Option("127.0.0.1", help="interface; 0.0.0.0 exposes it to the network"),
    home: Path | None = typer.Option(None, help=HOME_HELP),
) -> None:
    """Serve every profile's runs and artifacts; each user's token opens only their own."""
    from minikf.profiles.api import make_server, serve_until_interrupted

    server = make_server(port, host, home)
    typer.echo(f"profiles API on http://{host}:{port} (Ctrl-C stops it)", err=True)
    serve_until_interrupted(server)
