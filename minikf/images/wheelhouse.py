"""The wheels the images install, built on this host with pip (no index inside the build).

The pins are the versions installed here (minikf's dependency closure read from the
installed metadata), so the containers run what the local platform's tests ran.
Bookworm's python3 is 3.11 like this host's, so cp311 wheels fit.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

from minikf.runtime.errors import MinikfError

SKIP = {"minikf"}  # the project itself goes in as its own wheel, built from the source


def source_requirements() -> list[str] | None:
    """minikf's own requirements as the source tree the image is built from declares them
    (pyproject.toml), which may be newer than the installed metadata; None without a tree."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata is used
        return None
    path = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not path.is_file():
        return None
    return list(tomllib.loads(path.read_text()).get("project", {}).get("dependencies", []))


def pinned_requirements(root: str = "minikf") -> list[str]:
    """`name==version` for every distribution `root` needs here, extras it asks for included;
    minikf's own list comes from the source tree when there is one (source_requirements)."""
    versions: dict[str, str] = {}
    extras_done: dict[str, set[str]] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        wanted = {""} | set(extras)
        if key in versions and wanted <= extras_done[key]:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise MinikfError(f"{name} is not installed here: pip install -e . first", 2) from None
        versions[key] = dist.version
        new = wanted - extras_done.get(key, set())
        extras_done.setdefault(key, set()).update(wanted)
        declared = source_requirements() if key == canonicalize_name(root) == "minikf" else None
        for line in declared if declared is not None else dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in new):
                todo.append((req.name, frozenset(req.extras)))
    return [f"{name}=={version}" for name, version in sorted(versions.items()) if name not in SKIP]


def _have(wheel_dir: Path) -> set[str]:
    names = set()
    for path in wheel_dir.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        names.add(f"{name}=={version}")
    return names


def _requires_python(requirement: str) -> str:
    name = requirement.split("==")[0]
    return metadata.distribution(name).metadata.get("Requires-Python") or ""


def _download_for(python: str, name: str, wheel_dir: Path) -> str:
    """The newest wheel of `name` that supports `python` (an older release than the host's)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "--python-version", python, "-d", str(wheel_dir), name],
                          capture_output=True, text=True)
    found = re.findall(r"(?:Saved|File was already downloaded) (\S+\.whl)", proc.stdout)
    if proc.returncode != 0 or not found:
        raise MinikfError(f"no wheel of {name} for the image's Python {python}: "
                          f"{proc.stderr.strip()[-400:]}")
    wheel_name, version, _, _ = parse_wheel_filename(Path(found[-1]).name)
    return f"{wheel_name}=={version}"


def fill(wheel_dir: Path, requirements: list[str], python: str, say=print) -> list[str]:
    """Put a wheel for each pin into wheel_dir and return the pins the image installs.

    A pin whose Requires-Python excludes the image's Python (bookworm has 3.11.2, the host
    may have a later 3.11) is replaced by the newest release that supports it. Wheels
    already there are not fetched again.
    """
    wheel_dir.mkdir(parents=True, exist_ok=True)
    memo_path = wheel_dir / f"substitutes-{python}.json"
    memo = json.loads(memo_path.read_text()) if memo_path.exists() else {}
    pins = []
    for req in requirements:
        spec = _requires_python(req)
        if spec and not SpecifierSet(spec).contains(python, prereleases=True):
            if req not in memo:
                memo[req] = _download_for(python, req.split("==")[0], wheel_dir)
                say(f"{req} needs Python {spec}: using {memo[req]} for the image's {python}")
            pins.append(memo[req])
        else:
            pins.append(req)
    memo_path.write_text(json.dumps(memo, indent=1))
    have = {canonicalize_name(r.split("==")[0]) + "==" + r.split("==")[1] for r in _have(wheel_dir)}
    want = [r for r in pins
            if canonicalize_name(r.split("==")[0]) + "==" + r.split("==")[1] not in have]
    if want:
        say(f"pip wheel: {len(want)} of {len(pins)} wheels into {wheel_dir}")
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                               str(wheel_dir), *want], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
            raise MinikfError(f"pip wheel for the image's wheelhouse failed:\n{tail}")
    return pins


def source_files(root: Path) -> list[Path]:
    """What the minikf wheel is made of: the package and pyproject.toml."""
    files = [p for p in (root / "minikf").rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and p.suffix not in (".pyc", ".pyo")]
    return sorted(files + [root / "pyproject.toml"])


def source_hash(root: Path, under: str = "") -> str:
    """Hash of the wheel's files, or only of those under e.g. "minikf/workload"."""
    digest = hashlib.sha256()
    for path in source_files(root):
        if under and not path.relative_to(root).as_posix().startswith(under + "/"):
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def project_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "images").is_dir():
        raise MinikfError(f"images are built from a minikf source checkout; none at {root}", 2)
    return root


def build_minikf_wheel(root: Path, out_dir: Path) -> Path:
    """The project's own wheel, built from a copy so the work tree gets no build/ or egg-info."""
    with tempfile.TemporaryDirectory(prefix="minikf-src-") as tmp:
        for path in source_files(root):
            target = Path(tmp) / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                               "-q", "-w", str(out_dir), tmp], capture_output=True, text=True)
    if proc.returncode != 0:
        raise MinikfError(f"building the minikf wheel failed:\n{proc.stderr.strip()[-800:]}")
    return next(out_dir.glob("minikf-*.whl"))
