"""Profiles: one per user, each with a private dir (0700), a token file (0600) and quotas.

Layout under MINIKF_HOME (default ~/.minikf), so tests and xdist workers use their own:

    profiles/<user>/profile.yaml   name, quota, created (no secrets)
    profiles/<user>/token          the user's API token (0600)
    profiles/<user>/work/          the user's work dir (notebooks run here)
    profiles/<user>/runs/<id>/     the user's runs: results and artifacts
    profiles/<user>/snapshots/     the user's snapshots (minikf/snapshots: objects, manifests)
"""

from __future__ import annotations

import hmac
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from minikf.runtime import files
from minikf.runtime.errors import MinikfError

HOME_ENV = "MINIKF_HOME"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"


def minikf_home(home: Path | str | None = None) -> Path:
    """The given home, else $MINIKF_HOME, else ~/.minikf."""
    if home:
        return Path(home)
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".minikf")


class Quota(BaseModel):
    """What one user may use: CPU cores, memory per process, runs at the same time."""

    model_config = ConfigDict(extra="forbid")

    cpus: int = Field(default=2, ge=1, description="cores a run's processes may use")
    memory_mb: int = Field(default=4096, ge=256, description="address-space limit per process")
    max_runs: int = Field(default=2, ge=1, description="runs at the same time")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    quota: Quota = Field(default_factory=Quota)
    created: str = ""
    home: Path = Field(default=Path("."), exclude=True)

    @property
    def dir(self) -> Path:
        return self.home / "profiles" / self.name

    @property
    def work_dir(self) -> Path:
        return self.dir / "work"

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def snapshots_dir(self) -> Path:
        return self.dir / "snapshots"

    @property
    def token_file(self) -> Path:
        return self.dir / "token"

    def token(self) -> str:
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise MinikfError(f"profile {self.name}: cannot read its token file: {exc}") from None


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (a new file, 0600 from creation), atomically."""
    files.write_text(path, text, perms=0o600)


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _check_name(name: str) -> None:
    import re

    if not re.match(NAME_PATTERN, name):
        raise MinikfError(
            f"profile name {name!r}: expected lower-case letters, digits and '-', "
            "starting with a letter, at most 31 characters", exit_code=2)


def create_profile(name: str, quota: Quota | None = None, token: str | None = None,
                   home: Path | str | None = None) -> tuple[Profile, str]:
    """Create a profile; returns it and its token (the only time the token is handed out)."""
    _check_name(name)
    profile = Profile(name=name, quota=quota or Quota(), home=minikf_home(home),
                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if profile.dir.exists():
        raise MinikfError(f"profile {name!r} already exists in {profile.dir.parent}", exit_code=2)
    private_dir(profile.home)
    private_dir(profile.dir.parent)
    for directory in (profile.dir, profile.work_dir, profile.runs_dir):
        private_dir(directory)
    token = token or secrets.token_urlsafe(32)
    write_private(profile.token_file, token + "\n")
    write_private(profile.dir / "profile.yaml", yaml.safe_dump(profile.model_dump(mode="json")))
    return profile, token


def load_profile(name: str, home: Path | str | None = None) -> Profile:
    """A profile by name; a clear error naming the file and field when it is wrong."""
    root = minikf_home(home)
    path = root / "profiles" / name / "profile.yaml"
    if not path.is_file():
        known = ", ".join(p.name for p in list_profiles(root)) or "none"
        raise MinikfError(f"no profile {name!r} in {root / 'profiles'} (known: {known}); "
                          f"create it with `minikf profiles create {name}`", exit_code=2)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return Profile(**data, home=root)
    except yaml.YAMLError as exc:
        raise MinikfError(f"{path}: not valid YAML: {exc}", exit_code=2) from None
    except (ValidationError, TypeError) as exc:
        problems = exc.errors() if isinstance(exc, ValidationError) else [{"loc": (), "msg": str(exc)}]
        text = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in problems)
        raise MinikfError(f"{path}: {text}", exit_code=2) from None


def list_profiles(home: Path | str | None = None) -> list[Profile]:
    root = minikf_home(home) / "profiles"
    if not root.is_dir():
        return []
    return [load_profile(p.name, root.parent) for p in sorted(root.iterdir())
            if (p / "profile.yaml").is_file()]


def delete_profile(name: str, home: Path | str | None = None,
                   before: Callable[[Profile], object] = lambda profile: None) -> Path:
    """Remove a profile and everything in its dir; `before(profile)` runs first (the caller
    stops what the profile still runs, such as its notebook server)."""
    profile = load_profile(name, home)
    before(profile)
    shutil.rmtree(profile.dir)
    return profile.dir


def user_for_token(token: str, home: Path | str | None = None) -> str | None:
    """The profile a token belongs to, compared in constant time; None when it is no one's."""
    found = None
    for profile in list_profiles(home):
        try:
            known = profile.token()
        except MinikfError:
            continue
        if hmac.compare_digest(token.encode(), known.encode()):
            found = profile.name
    return found
