"""`minikf images build / list / prune`: the docker platform's images."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Container images for the docker platform (no registry needed).")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="images")


@app.command("build")
def build_cmd(
    base: str = typer.Option("rootfs", help="'rootfs': a Debian bookworm base made with debootstrap "
                             "(root, a Debian mirror); or an image (python3.11 + venv) to build FROM"),
    mirror: str | None = typer.Option(None, help="Debian mirror for the rootfs base "
                                      "(default: MINIKF_DEBIAN_MIRROR, else apt's)"),
) -> None:
    """Build the base, deps, runtime and server images; what is already built is skipped."""
    import time

    from minikf.images.build import build_all

    started = time.monotonic()
    results = build_all(base=None if base == "rootfs" else base, say=typer.echo, mirror=mirror)
    built = [r.name for r in results if r.built]
    typer.echo(f"{'built ' + ', '.join(built) if built else 'nothing to build'} "
               f"(base {base}) in {time.monotonic() - started:.1f}s")


@app.command("load")
def load_cmd(
    image: list[str] = typer.Argument(None, help="images (default: minikf/runtime:latest "
                                      "minikf/server:latest)"),
    kind: str | None = typer.Option(None, "--kind", help="a kind cluster's name"),
    cluster_script: str | None = typer.Option(None, help="a cluster script with a `load-image` verb "
                                              "(../shared/k8s/cluster.sh)"),
) -> None:
    """Load images from the local Docker Engine into a cluster's node (no registry needed)."""
    from pathlib import Path

    from minikf.appliance.imageload import IMAGES, LoadTarget, load_images

    target = LoadTarget(kind_cluster=kind, cluster_script=Path(cluster_script) if cluster_script else None)
    images = list(image or IMAGES)
    load_images(images, target, say=typer.echo)
    typer.echo(f"loaded {len(images)} image(s) into {target}")


@app.command("list")
def list_cmd() -> None:
    """The images minikf built (label minikf=1)."""
    from minikf.images.build import list_images

    rows = list_images()
    if not rows:
        typer.echo("no minikf images: run `minikf images build`")
        return
    typer.echo(f"{'image':8} {'id':12} {'size':>8} {'created':19}  tags")
    for row in rows:
        typer.echo(f"{row['image']:8} {row['id']:12} {row['size_mb']:>6}MB {row['created']:19}  "
                   f"{', '.join(row['tags']) or '<untagged>'}")


@app.command("prune")
def prune_cmd() -> None:
    """Remove older content tags and untagged build layers; keeps :latest and the base."""
    from minikf.images.build import prune_images

    removed, kept = prune_images()
    for ref in removed:
        typer.echo(f"removed {ref}")
    for line in kept:
        typer.echo(f"kept {line}")
    typer.echo(f"{len(removed)} image(s) removed")
