"""`minikf up`, `minikf down`, `minikf status`: the appliance (kind, a Vagrant VM running kind, or
the components alone on a cluster the user already has)."""

from __future__ import annotations

from pathlib import Path

import typer

from minikf.runtime.errors import MinikfError


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def up(
    driver: str = typer.Option("kind", help="kind | vagrant | existing (a cluster you have: --kubeconfig)"),
    kubeconfig: Path | None = typer.Option(None, help="--driver existing: the cluster to install onto"),
    context: str | None = typer.Option(None, help="--driver existing: the kubeconfig context"),
    gpus: bool = typer.Option(False, "--gpus",
                              help="NVIDIA GPUs in the cluster (driver + toolkit on the host)"),
    components: list[str] = typer.Option([], "--components", "-c",
                                         help="comma-separated; default: all but gpu (`minikf up --list`)"),
    mirror: list[str] = typer.Option([], "--mirror", help="SOURCE=DIR or SOURCE=GIT_URL[@REF], repeatable"),
    name: str = typer.Option("minikf", help="cluster name"),
    gateway_port: int = typer.Option(8080, help="host port for the Istio ingress gateway (127.0.0.1)"),
    api_port: int | None = typer.Option(None, help="host port for the API server (default: kind picks)"),
    listen_address: str = typer.Option("127.0.0.1",
                                       help="host address the ports bind to (0.0.0.0 inside a VM)"),
    data_dir: Path | None = typer.Option(None, help="host directory keeping volumes across clusters"),
    load_image: list[str] = typer.Option([], "--load-image", help="docker image to `kind load`, repeatable"),
    minikf_images: bool = typer.Option(False, "--minikf-images",
                                       help="also `kind load` minikf/deps, minikf/runtime, minikf/server"),
    provider: str = typer.Option("libvirt", help="vagrant provider: libvirt | virtualbox"),
    list_components: bool = typer.Option(False, "--list", help="list the components and exit"),
    no_deps: bool = typer.Option(False, "--no-deps",
                                 help="only the named components, not what they need (already there)"),
    wait_timeout: int | None = typer.Option(None, min=1,
                                            help="cap every readiness wait at this many seconds"),
) -> None:
    """Bring up the appliance: preflight, cluster, pinned Kubeflow components, endpoints."""
    from minikf.appliance import components as comp

    if list_components:
        for c in comp.COMPONENTS.values():
            needs = ", ".join(c.needs) or "-"
            typer.echo(f"{c.name:18} {c.description}  (needs: {needs})")
        return
    chosen = comp.resolve(_split(components), gpus=gpus, with_needs=not no_deps)
    if driver != "existing" and (kubeconfig or context):
        raise MinikfError("--kubeconfig and --context go with --driver existing (kind and vagrant make "
                          "their own cluster)", 2)
    if driver == "existing":
        from minikf.appliance.existing import ExistingAppliance

        if kubeconfig is None:
            raise MinikfError("--driver existing needs --kubeconfig FILE: the cluster to install onto", 2)
        existing = ExistingAppliance(name, kubeconfig.expanduser(), chosen, context=context,
                                       mirrors=comp.Mirrors.from_args(mirror), wait_timeout_s=wait_timeout,
                                       say=lambda m: typer.echo(m, err=True))
        try:
            found = existing.up()
        except KeyboardInterrupt:
            raise MinikfError(f"interrupted: what was applied stays; `minikf down --name {name}` deletes "
                              f"what this appliance created, `minikf up` again resumes", 130) from None
    elif driver == "kind":
        from minikf.appliance.kind import KindAppliance
        from minikf.appliance.kindconfig import KindSettings

        settings = KindSettings(name=name, gateway_port=gateway_port, api_server_port=api_port,
                                listen_address=listen_address, data_dir=data_dir, gpus=gpus)
        images = list(load_image)
        if minikf_images:
            from minikf.images.build import NAMES

            images += [f"minikf/{n}:latest" for n in NAMES]
        appliance = KindAppliance(settings, chosen, comp.Mirrors.from_args(mirror),
                                  say=lambda m: typer.echo(m, err=True), load_images=images,
                                  wait_timeout_s=wait_timeout)
        try:
            found = appliance.up()
        except KeyboardInterrupt:
            raise MinikfError(f"interrupted: what was created stays for inspection; `minikf down --name "
                              f"{name}` removes it, `minikf up` again resumes", 130) from None
    elif driver == "vagrant":
        from minikf.appliance.vagrant import VagrantAppliance

        found = VagrantAppliance(provider=provider, gpus=gpus, components=_split(components),
                                 say=lambda m: typer.echo(m, err=True)).up()
    else:
        raise MinikfError(f"--driver {driver!r}: expected kind, vagrant or existing", 2)
    typer.echo("The appliance is up:")
    for key, value in found.items():
        typer.echo(f"  {key:10} {value}")
    namespace = "kubeflow-user-example-com" if "user-namespace" in [c.name for c in chosen] else "minikf"
    typer.echo(f"Next: minikf run fashion-mnist --platform kubernetes --kubeconfig {found['kubeconfig']} "
               f"--namespace {namespace}")


def down(
    name: str = typer.Option("minikf", help="cluster name (minikf-vm for the vagrant driver)"),
    driver: str | None = typer.Option(None, help="kind | vagrant | existing (default: what `up` recorded)"),
) -> None:
    """Remove the appliance (the data directory / data disk stays); on an existing cluster, delete
    only the objects `up` created. Nothing there is not an error."""
    from minikf.appliance.state import ApplianceState

    state = ApplianceState.load(name)
    chosen = driver or (state.driver if state else "kind")
    if chosen == "existing":
        from minikf.appliance.existing import ExistingAppliance

        if state is None:
            typer.echo(f"nothing to remove: no appliance {name!r} recorded")
            return
        ExistingAppliance(name, Path(state.kubeconfig), say=lambda m: typer.echo(m, err=True)).down()
    elif chosen == "vagrant":
        from minikf.appliance.vagrant import VagrantAppliance

        VagrantAppliance(name=name).down()
    elif chosen == "kind":
        from minikf.appliance.kind import KindAppliance
        from minikf.appliance.kindconfig import KindSettings
        from minikf.appliance.tools import Tools

        tools = Tools()
        if state is None and not tools.which("kind"):
            typer.echo(f"nothing to remove: no appliance {name!r} recorded and kind is not installed")
            return
        KindAppliance(KindSettings(name=name), [], tools=tools).down()
    else:
        raise MinikfError(f"--driver {chosen!r}: expected kind, vagrant or existing", 2)
    typer.echo(f"removed appliance {name}")


def status(
    name: str = typer.Option("minikf", help="appliance name"),
    kubeconfig: Path | None = typer.Option(None, help="default: the appliance's, else $KUBECONFIG"),
    context: str | None = typer.Option(None, help="kubeconfig context"),
    components: list[str] = typer.Option([], "--components", "-c", help="default: what `up` installed"),
) -> None:
    """Each component's health on the appliance's (or any) cluster."""
    from minikf.appliance import components as comp
    from minikf.appliance.state import ApplianceState
    from minikf.appliance.status import health
    from minikf.kube.client import connect

    state = ApplianceState.load(name)
    if kubeconfig is None and state and state.kubeconfig:
        kubeconfig = Path(state.kubeconfig)
    names = _split(components)
    if names:
        chosen = comp.resolve(names)
    elif state and state.components:  # what `up` installed, as it was (--no-deps included)
        chosen = [comp.COMPONENTS[n] for n in state.components if n in comp.COMPONENTS]
    else:
        chosen = [comp.COMPONENTS[n] for n in comp.DEFAULT_COMPONENTS]
    cluster = connect(kubeconfig, context)
    try:
        typer.echo(f"cluster {cluster.server} (Kubernetes {cluster.version}, context {cluster.context})")
        results = health(cluster, chosen)
    finally:
        cluster.close()
    for item in results:
        typer.echo(f"  {item.component:18} {item.state:18} {item.detail}")
    if any(h.state in ("not ready", "not installed") for h in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
