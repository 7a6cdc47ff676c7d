"""Bind mounts for containers that see the host's paths at the same place: the docker platform's
workload containers and the pipeline driver's task containers both use them.

A container sees only what is mounted, so paths named on a command line are found (`host_paths`),
made real (`resolve_paths`: no `..`, no symlinks), and mounted at the same path (`mounts_for`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path


def host_paths(argv: list[str]) -> list[str]:
    """Absolute paths named on the command line (also inside --opt=PATH and a,b lists)."""
    found = []
    for token in argv:
        for part in re.split(r"[=,]", token):
            if not part.startswith("/"):
                continue
            if Path(part).exists():
                found.append(part)
            elif Path(part).parent != Path("/") and Path(part).parent.is_dir():
                found.append(str(Path(part).parent))  # an output the workload will create
    return found


def resolve_paths(text: str) -> str:
    """Existing absolute paths in `text` (alone, after `=`, or in a comma list) made real.

    A container sees only the mounted directories, so `/a/scenarios/../data` (or a path
    through a symlink) must become the real `/a/data` that is mounted.
    """
    parts = re.split(r"([=,])", text)
    return "".join(os.path.realpath(p) if p.startswith("/") and Path(p).exists() else p for p in parts)


def resolve_json_arguments(argv: list[str]) -> list[str]:
    """The pipeline driver's `--arguments JSON` with its host paths made real."""
    out = list(argv)
    for i, token in enumerate(out[:-1]):
        if token == "--arguments":
            args = json.loads(out[i + 1])
            out[i + 1] = json.dumps({k: resolve_paths(v) if isinstance(v, str) else v
                                     for k, v in args.items()})
    return out


def mounts_for(paths: list[str], read_only: bool = False, confine: Path | None = None) -> list:
    """Bind mounts at the same path; a path under a run's work dir mounts that whole dir. With
    `confine` (a user's own dir), a path under it mounts it, and any other path only itself:
    never the run dir around them, where other users' dirs are."""
    from docker.types import Mount

    tmp = Path(tempfile.gettempdir()).resolve()
    own = confine.resolve() if confine is not None else None
    chosen: set[Path] = set()
    for raw in paths:
        path = Path(raw).resolve()
        rel = path.relative_to(tmp).parts if path.is_relative_to(tmp) else ()
        if own is not None and path.is_relative_to(own):
            path = own
        elif own is None and rel and rel[0].startswith("minikf-"):
            path = tmp / rel[0]  # the run's work dir: outputs land beside the inputs
        chosen.add(path)
    top = [p for p in chosen if not any(p != q and p.is_relative_to(q) for q in chosen)]
    return [Mount(target=str(p), source=str(p), type="bind", read_only=read_only) for p in sorted(top)]
