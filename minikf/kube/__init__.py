"""The kubernetes platform's pieces: cluster connection and checks (client.py), resource builders."""

from __future__ import annotations

from minikf.runtime.errors import MinikfError


def cluster_options(platform: str, kubeconfig: str | None, namespace: str | None,
                    flavor: str | None = None) -> dict:
    """The get_platform() options from --kubeconfig/--namespace/--flavor; an error if given to
    another platform."""
    options = {k: v for k, v in {"kubeconfig": kubeconfig, "namespace": namespace,
                                 "flavor": flavor}.items() if v}
    if options and platform != "kubernetes":
        flags = " and ".join(f"--{k}" for k in options)
        verb = "is" if len(options) == 1 else "are"
        raise MinikfError(f"{flags} {verb} for --platform kubernetes only (got --platform {platform})", 2)
    return options
