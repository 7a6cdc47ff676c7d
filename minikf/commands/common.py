"""What several commands share: where the bundled scenarios are, resolving a scenario argument,
and `--param key=value` parsing. Not a command module (commands/__init__.py lists those)."""

from __future__ import annotations

import os
from pathlib import Path

from minikf.runtime.errors import MinikfError

SCENARIO_DIR = Path(os.environ.get("MINIKF_SCENARIOS", Path(__file__).parent.parent.parent / "scenarios"))


def scenario_files(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def resolve_scenario(name_or_path: str) -> Path:
    """A scenario argument: a path to a YAML file, or the name of a bundled scenario."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    candidate = SCENARIO_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(p.stem for p in scenario_files())
    raise MinikfError(f"no scenario {name_or_path!r}; known: {known}", exit_code=2)


def parse_params(pairs: list[str]) -> dict:
    """`--param key=value` pairs; values are YAML scalars (1, 0.5, true, a,b stays a string)."""
    import yaml

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MinikfError(f"--param {pair!r}: expected key=value", exit_code=2)
        try:
            params[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise MinikfError(f"--param {pair}: not a YAML value ({problem}); quote it to pass "
                              f"it as text: {key}='\"{value}\"'", exit_code=2) from None
    return params
