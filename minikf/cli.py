"""The `minikf` command line (typer). Errors are one message and an exit code, no traceback."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from minikf.errors import MinikfError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
scenarios_app = typer.Typer(no_args_is_help=True, help="List and validate scenario files.")
app.add_typer(scenarios_app, name="scenarios")

SCENARIO_DIR = Path(os.environ.get("MINIKF_SCENARIOS", Path(__file__).parent.parent / "scenarios"))


def _scenario_files(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def _resolve(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    candidate = SCENARIO_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(p.stem for p in _scenario_files())
    raise MinikfError(f"no scenario {name_or_path!r}; known: {known}", exit_code=2)


def _parse_params(pairs: list[str]) -> dict:
    import yaml

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MinikfError(f"--param {pair!r}: expected key=value", exit_code=2)
        params[key] = yaml.safe_load(value) if value else ""
    return params


@scenarios_app.command("list")
def scenarios_list() -> None:
    """List the bundled scenarios and the capabilities each needs."""
    from minikf.scenario import load_scenario

    for path in _scenario_files():
        scenario = load_scenario(path)
        needs = ", ".join(scenario.requires) or "-"
        typer.echo(f"{scenario.name:24} needs: {needs:30} {scenario.description}")


@scenarios_app.command("validate")
def scenarios_validate(paths: list[Path]) -> None:
    """Validate scenario files; print PATH:LINE: field: problem for each problem."""
    from minikf.scenario import validate_paths

    problems = validate_paths(paths)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(2)
    typer.echo(f"{len(paths)} scenario file(s) valid")


@app.command()
def run(
    scenario: str = typer.Argument(..., help="a scenario name or a path to its YAML"),
    platform: str = typer.Option("local", help="local | docker | kubernetes"),
    param: list[str] = typer.Option([], "--param", "-p", help="key=value, repeatable"),
    results: Path = typer.Option(Path("results"), help="directory for results and logs"),
    quiet: bool = typer.Option(False, help="plain lines even on a terminal"),
    kubeconfig: str | None = typer.Option(None, help="kubernetes: kubeconfig file (default $KUBECONFIG)"),
    namespace: str | None = typer.Option(None, help="kubernetes: namespace (default: the context's)"),
) -> None:
    """Run one scenario and write results.json, junit.xml and report.html."""
    from minikf.engine.runner import run_scenario
    from minikf.kube import cluster_options
    from minikf.platforms import get_platform
    from minikf.progress import Progress
    from minikf.scenario import load_scenario

    loaded = load_scenario(_resolve(scenario))
    target = get_platform(platform, **cluster_options(platform, kubeconfig, namespace))
    typer.echo(f"Running {loaded.name} on {target.name} ...", err=True)
    try:
        result = run_scenario(loaded, target, results, _parse_params(param), Progress(quiet))
    except KeyboardInterrupt:
        typer.echo("interrupted: everything the run started was stopped", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"{loaded.name}: {result.status}. {result.message}".rstrip(), err=True)
    typer.echo(f"Results: {results / 'report.html'}", err=True)
    raise typer.Exit(0 if result.status == "passed" else 1)


@app.command()
def conformance(
    platform: str = typer.Option("local", help="local | docker | kubernetes"),
    results: Path = typer.Option(Path("results"), help="where the bundle is written"),
    jobs: int = typer.Option(1, "-j", "--jobs", help="scenarios run at the same time"),
    kubeconfig: str | None = typer.Option(None, help="kubernetes: kubeconfig file (default $KUBECONFIG)"),
    namespace: str | None = typer.Option(None, help="kubernetes: namespace (default: the context's)"),
) -> None:
    """Run every scenario the platform can host into one results bundle (.tar.gz)."""
    from minikf.conformance import run_conformance, summary_text
    from minikf.kube import cluster_options
    from minikf.platforms import get_platform
    from minikf.scenario import load_scenario

    target = get_platform(platform, **cluster_options(platform, kubeconfig, namespace))
    scenarios = [load_scenario(p) for p in _scenario_files()]

    def progress(name, result):
        mark = {"passed": "✓", "skipped": "-"}.get(result.status, "✗")
        typer.echo(f" {mark} {name} ({result.duration_s:.1f}s)", err=True)

    report, bundle = run_conformance(scenarios, target, results, jobs, progress)
    typer.echo(summary_text(report))
    typer.echo(f"Bundle: {bundle}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def serve(
    model: Path = typer.Option(..., "--model", help="model directory (model.pt + model.json)"),
    port: int = typer.Option(8080, help="HTTP port"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (0.0.0.0 exposes it to the network)"),
    token: str | None = typer.Option(
        None, envvar="MINIKF_SERVE_TOKEN", help="bearer token required on every request"
    ),
) -> None:
    """Serve a trained model (KServe V1 and V2 protocols) in the foreground."""
    if not (model / "model.pt").is_file():
        raise MinikfError(f"--model {model}: no model here (expected model.pt and model.json)", exit_code=2)
    from minikf.workload.server import serve as run_server

    if not token:  # secure by default: never an open endpoint
        import secrets

        token = secrets.token_urlsafe(32)
        typer.echo(f"no --token given; requests need this bearer token (shown once): {token}", err=True)
    run_server(model, port, host=host, token=token)


@app.command()
def compile(
    pipeline: str = typer.Argument(..., help="a pipeline name, e.g. fashion-mnist"),
    output: Path = typer.Option(..., "-o", "--output", help="the KFP IR YAML to write"),
) -> None:
    """Compile a journey's pipeline to KFP IR YAML that a KFP API server accepts."""
    from minikf.pipelines import PIPELINES

    if pipeline not in PIPELINES:
        raise MinikfError(f"no pipeline {pipeline!r}; known: {', '.join(PIPELINES)}", exit_code=2)
    from kfp import compiler

    from minikf.pipelines.run_local import load_pipeline

    compiler.Compiler().compile(load_pipeline(pipeline), str(output))
    typer.echo(f"wrote {output}")


@app.command()
def version() -> None:
    """Print the versions of minikf and what it drives."""
    from minikf.engine.results import versions

    for name, value in versions().items():
        typer.echo(f"{name} {value}")


# The areas' commands live in minikf/commands/, one module per area (bench, images, runs, ...).
from minikf.commands import register_all  # noqa: E402

register_all(app)


def main() -> None:
    """Entry point: a MinikfError is one line and its exit code; --debug shows the traceback."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except MinikfError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
