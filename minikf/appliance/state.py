"""Where an appliance keeps its files: $MINIKF_HOME/appliance/NAME (default ~/.minikf).

state.json records what `minikf up` made (driver, components, endpoints), so `down` and `status`
know what to look at without asking the user again.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minikf.runtime import files


def home(name: str) -> Path:
    base = Path(os.environ.get("MINIKF_HOME", Path.home() / ".minikf")).expanduser()
    return base / "appliance" / name


@dataclass
class ApplianceState:
    name: str
    driver: str
    components: list[str] = field(default_factory=list)
    kubeconfig: str = ""
    endpoints: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # `--driver existing`: the objects `up` created (apiVersion, kind, namespace, name), which
    # `down` deletes; what was on the cluster before is never recorded here.
    created: list[dict[str, str]] = field(default_factory=list)

    def save(self) -> Path:
        path = home(self.name) / "state.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_text(path, json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, name: str) -> ApplianceState | None:
        path = home(name) / "state.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
