"""`minikf kube check`: what the kubernetes platform would find on a cluster, before a run.

For a vendor pointing the harness at their distribution: the server and version, which Kubeflow
CRDs are served, whether the KFP API is there, component versions, and every verb the journeys
need that RBAC denies in the namespace. Exit 1 when something a journey needs is missing.
"""

from __future__ import annotations

import typer

kube_app = typer.Typer(no_args_is_help=True, help=__doc__.splitlines()[0])


@kube_app.command("check")
def check(
    kubeconfig: str | None = typer.Option(None, help="kubeconfig file (default $KUBECONFIG)"),
    namespace: str | None = typer.Option(None, help="namespace (default: the context's)"),
    context: str | None = typer.Option(None, help="kubeconfig context"),
) -> None:
    """Connect, list capabilities, CRDs, component versions and missing permissions."""
    from minikf.kube import objects as res
    from minikf.kube.client import denied
    from minikf.platforms.kubernetes import KubernetesPlatform

    platform = KubernetesPlatform(kubeconfig=kubeconfig, namespace=namespace, context=context)
    try:
        info = platform.describe()
        typer.echo(f"cluster {info['server']} (Kubernetes {info['kubernetes']}, context {info['context']}), "
                   f"namespace {info['namespace']}")
        for crd, served in info["crds"].items():
            typer.echo(f"  {'✓' if served else '-'} {crd}")
        typer.echo(f"  Kubeflow Pipelines API: {info['kfp']}")
        for component, version in info["components"].items():
            typer.echo(f"  {component}: {version}")
        typer.echo(f"capabilities: {', '.join(info['capabilities']) or 'none'}")
        needs = list(res.COMMON_PERMISSIONS)
        if "training" in platform.capabilities:
            plural = "pytorchjobs" if platform.train_kind == "PyTorchJob" else "trainjobs"
            needs += res.TRAIN_PERMISSIONS[plural]
        if "serving" in platform.capabilities:
            needs += res.SERVE_PERMISSIONS
        lacking = denied(platform.cluster, platform.namespace, needs)
    finally:
        platform.close()
    if lacking:
        typer.echo(f"missing permissions in namespace {info['namespace']!r}: {', '.join(map(str, lacking))}")
    else:
        typer.echo(f"permissions: all {len(needs)} verbs the journeys use are allowed")
    if lacking or not {"training", "serving"} <= platform.capabilities:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(kube_app, name="kube")
