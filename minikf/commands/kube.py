"""`minikf kube check`: what the kubernetes platform would find on a cluster, before a run.

For a vendor pointing the harness at their distribution: the server and version, which Kubeflow
CRDs are served, which flavor runs training and serving and why (Kubeflow where its controller is
ready, plain Kubernetes otherwise), whether the KFP API is there, component versions, and every
verb the journeys need that RBAC denies in the namespace. Exit 1 when something a journey needs
will not work, each such thing on a line starting with "✗".
"""

from __future__ import annotations

import typer

kube_app = typer.Typer(no_args_is_help=True, help=__doc__.splitlines()[0])


@kube_app.command("check")
def check(
    kubeconfig: str | None = typer.Option(None, help="kubeconfig file (default $KUBECONFIG)"),
    namespace: str | None = typer.Option(None, help="namespace (default: the context's)"),
    context: str | None = typer.Option(None, help="kubeconfig context"),
    flavor: str | None = typer.Option(None, help="auto (default), core or kubeflow; also MINIKF_KUBE_FLAVOR"),
) -> None:
    """Connect, list CRDs, flavors, component versions and what will not work."""
    from minikf.kube.client import denied
    from minikf.platforms.kubernetes import KubernetesPlatform

    platform = KubernetesPlatform(kubeconfig=kubeconfig, namespace=namespace, context=context,
                                  flavor=flavor)
    try:
        info = platform.describe()
        typer.echo(f"cluster {info['server']} (Kubernetes {info['kubernetes']}, context {info['context']}), "
                   f"namespace {info['namespace']}")
        for crd, served in info["crds"].items():
            typer.echo(f"  {'✓' if served else '-'} {crd}")
        typer.echo(f"  Kubeflow Pipelines API: {info['kfp']}")
        for component, version in info["components"].items():
            typer.echo(f"  {component}: {version}")
        if platform.train_kind == "TrainJob" and "training" in platform.capabilities:
            typer.echo(f"  TrainJob data volume: {info['trainer_api']}")
        for capability, line in info["flavors"].items():
            typer.echo(f"{capability}: {line}")
        problems = [f"{cap}: {choice.why}" for cap, choice in platform.choices.items()
                    if cap not in platform.capabilities]
        problems += platform.kubeflow_problems()
        needs = platform.permissions_needed()
        lacking = denied(platform.cluster, platform.namespace, needs)
    finally:
        platform.close()
    if lacking:
        problems.append(f"missing permissions in namespace {info['namespace']!r}: "
                        f"{', '.join(map(str, lacking))}")
    else:
        typer.echo(f"permissions: all {len(needs)} verbs the journeys use are allowed")
    typer.echo(f"capabilities: {', '.join(info['capabilities']) or 'none'}")
    for problem in problems:
        typer.echo(f"✗ {problem}")
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(kube_app, name="kube")
