"""`minikf run SCENARIO` and `minikf conformance`: the engine, from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from minikf.commands.common import parse_params, resolve_scenario, scenario_files

PLATFORM_HELP = "local | docker | kubernetes (or a plugin's)"


def register(root: typer.Typer) -> None:
    root.command()(run)
    root.command()(conformance)


def run(
    scenario: str = typer.Argument(..., help="a scenario name or a path to its YAML"),
    platform: str = typer.Option("local", help=PLATFORM_HELP),
    param: list[str] = typer.Option([], "--param", "-p", help="key=value, repeatable"),
    results: Path = typer.Option(Path("results"), help="directory for results and logs"),
    quiet: bool = typer.Option(False, help="plain lines even on a terminal"),
    kubeconfig: str | None = typer.Option(None, help="kubernetes: kubeconfig file (default $KUBECONFIG)"),
    namespace: str | None = typer.Option(None, help="kubernetes: namespace (default: the context's)"),
) -> None:
    """Run one scenario and write results.json, junit.xml and report.html."""
    from minikf.commands.progress import Progress
    from minikf.engine.runner import run_scenario
    from minikf.kube import cluster_options
    from minikf.platforms import get_platform
    from minikf.scenario import load_scenario

    loaded = load_scenario(resolve_scenario(scenario))
    target = get_platform(platform, **cluster_options(platform, kubeconfig, namespace))
    typer.echo(f"Running {loaded.name} on {target.name} ...", err=True)
    try:
        result = run_scenario(loaded, target, results, parse_params(param), Progress(quiet))
    except KeyboardInterrupt:
        typer.echo("interrupted: everything the run started was stopped", err=True)
        raise typer.Exit(130) from None
    finally:
        target.close()
    typer.echo(f"{loaded.name}: {result.status}. {result.message}".rstrip(), err=True)
    typer.echo(f"Results: {results / 'report.html'}", err=True)
    raise typer.Exit(0 if result.ok else 1)


def conformance(
    platform: str = typer.Option("local", help=PLATFORM_HELP),
    results: Path = typer.Option(Path("results"), help="where the bundle is written"),
    jobs: int = typer.Option(1, "-j", "--jobs", help="scenarios run at the same time"),
    kubeconfig: str | None = typer.Option(None, help="kubernetes: kubeconfig file (default $KUBECONFIG)"),
    namespace: str | None = typer.Option(None, help="kubernetes: namespace (default: the context's)"),
) -> None:
    """Run every scenario the platform can host into one results bundle (.tar.gz)."""
    from minikf.engine.conformance import run_conformance, summary_text
    from minikf.kube import cluster_options
    from minikf.platforms import get_platform
    from minikf.scenario import load_scenario

    target = get_platform(platform, **cluster_options(platform, kubeconfig, namespace))
    scenarios = [load_scenario(p) for p in scenario_files()]

    def progress(name, result):
        typer.echo(f" {result.status.mark} {name} ({result.duration_s:.1f}s)", err=True)

    try:
        report, bundle = run_conformance(scenarios, target, results, jobs, progress)
    finally:
        target.close()
    typer.echo(summary_text(report))
    typer.echo(f"Bundle: {bundle}")
    raise typer.Exit(0 if report.ok else 1)
