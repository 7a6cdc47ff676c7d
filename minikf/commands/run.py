"""`minikf run SCENARIO` and `minikf conformance`: the engine, from the command line."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from minikf.commands.common import parse_params, resolve_scenario, scenario_files

PLATFORM_HELP = "local | docker | kubernetes (or a plugin's)"
FLAVOR_HELP = ("kubernetes: auto (default: Kubeflow where its controllers run), core (plain "
               "Kubernetes) or kubeflow; also MINIKF_KUBE_FLAVOR")


def register(root: typer.Typer) -> None:
    root.command()(run)
    root.command()(conformance)


def run(
    scenario: str | None = typer.Argument(None, help="a scenario name or a path to its YAML"),
    platform: str | None = typer.Option(None, help=PLATFORM_HELP + " (default local; a snapshot's "
                                        "own platform with --from-snapshot)"),
    param: list[str] = typer.Option([], "--param", "-p", help="key=value, repeatable"),
    results: Path = typer.Option(Path("results"), help="directory for results and logs"),
    quiet: bool = typer.Option(False, help="plain lines even on a terminal"),
    kubeconfig: str | None = typer.Option(None, help="kubernetes: kubeconfig file (default $KUBECONFIG)"),
    namespace: str | None = typer.Option(None, help="kubernetes: namespace (default: the context's)"),
    flavor: str | None = typer.Option(None, help=FLAVOR_HELP),
    from_snapshot: str | None = typer.Option(None, "--from-snapshot", help="re-run a run snapshot "
                                             "(its scenario, parameters and data) and compare"),
    user: str | None = typer.Option(None, "--user", "-u", help="--from-snapshot: whose store"),
    restore_dir: Path | None = typer.Option(None, help="--from-snapshot: restore here and keep it "
                                            "(default: a temporary folder)"),
    metric: str = typer.Option("accuracy", help="--from-snapshot: the metric compared"),
    tolerance: float = typer.Option(0.05, help="--from-snapshot: how far it may move"),
    json_out: bool = typer.Option(False, "--json", help="--from-snapshot: a JSON summary last"),
) -> None:
    """Run one scenario and write results.json, junit.xml and report.html."""
    from minikf.commands.progress import Progress
    from minikf.engine.runner import run_scenario
    from minikf.kube import cluster_options
    from minikf.platforms import get_platform
    from minikf.runtime.errors import Interrupted, MinikfError
    from minikf.scenario import load_scenario

    if (scenario is None) == (from_snapshot is None):
        raise MinikfError("give a SCENARIO or --from-snapshot ID, one of them", exit_code=2)
    if from_snapshot:
        if param:
            raise MinikfError("--from-snapshot runs with the snapshot's parameters; no --param", 2)
        from minikf.commands.snapshot import rerun

        rerun(from_snapshot, platform, results, user, restore_dir, metric, tolerance, json_out,
              quiet, cluster=(kubeconfig, namespace))
        return
    platform = platform or "local"
    loaded = load_scenario(resolve_scenario(scenario))
    target = get_platform(platform, **cluster_options(platform, kubeconfig, namespace, flavor))
    typer.echo(f"Running {loaded.name} on {target.name} ...", err=True)
    try:
        result = run_scenario(loaded, target, results, parse_params(param), Progress(quiet))
    except KeyboardInterrupt as exc:  # Interrupted: the run stopped what it started
        stopped = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        typer.echo(stopped.message, err=True)
        raise typer.Exit(stopped.exit_code) from None
    finally:
        target.close()
    typer.echo(f"{loaded.name}: {result.status}. {result.message}".rstrip(), err=True)
    typer.echo(f"Results: {results / 'report.html'}", err=True)
    raise typer.Exit(0 if result.ok else 1)


def conformance(
    platform: str = typer.Option("local", help=PLATFORM_HELP + "; several, comma-separated, "
                                 "run one after the other into one bundle, side by side"),
    results: Path = typer.Option(Path("results"), help="where the bundle is written"),
    jobs: int = typer.Option(1, "-j", "--jobs", help="scenarios run at the same time"),
    kubeconfig: str | None = typer.Option(None, help="kubernetes: kubeconfig file (default $KUBECONFIG)"),
    namespace: str | None = typer.Option(None, help="kubernetes: namespace (default: the context's)"),
    flavor: str | None = typer.Option(None, help=FLAVOR_HELP),
) -> None:
    """Run every scenario the platform(s) can host into one results bundle (.tar.gz) with its
    page (index.html), summary, JUnit and each run's report."""
    from minikf.engine.conformance import run_conformance, summary_text
    from minikf.scenario import load_scenario

    names = _platform_names(platform, kubeconfig, namespace, flavor)
    scenarios = [load_scenario(p) for p in scenario_files()]
    targets = []

    def progress(name, result):
        typer.echo(f" {result.status.mark} {name} ({result.duration_s:.1f}s)", err=True)

    try:
        targets += _platforms(names, kubeconfig, namespace, flavor)
        report, bundle = run_conformance(scenarios, targets, results, jobs, progress)
    finally:
        for target in targets:
            target.close()
    typer.echo(summary_text(report))
    typer.echo(f"Bundle: {bundle} (open {bundle.name.removesuffix('.tar.gz')}/index.html)")
    raise typer.Exit(0 if report.ok else 1)


def _platform_names(platform: str, kubeconfig: str | None, namespace: str | None,
                    flavor: str | None = None) -> list[str]:
    """`local,docker` -> its names, once each; --kubeconfig needs kubernetes among them."""
    from minikf.kube import cluster_options

    names = list(dict.fromkeys(n.strip() for n in platform.split(",") if n.strip()))
    if not names:
        raise typer.BadParameter("name at least one platform", param_hint="--platform")
    cluster_options("kubernetes" if "kubernetes" in names else names[0], kubeconfig, namespace, flavor)
    return names


def _platforms(names: list[str], kubeconfig: str | None, namespace: str | None,
               flavor: str | None = None):
    """Each platform as get_platform() makes it (the cluster options for kubernetes only)."""
    from minikf.kube import cluster_options
    from minikf.platforms import get_platform

    for name in names:
        options = cluster_options(name, kubeconfig, namespace, flavor) if name == "kubernetes" else {}
        yield get_platform(name, **options)
