"""Adding a platform and a step kind from outside the package: one module, registered.

The toy plugin is a real installed distribution as far as Python can tell (a dist-info folder
with entry points on the path), and `minikf run` is the real CLI in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minikf.platforms import get_platform
from minikf.platforms.base import Platform
from minikf.platforms.local import LocalPlatform
from minikf.plugins import PLATFORMS, STEP_KINDS, Registry
from minikf.runtime.errors import MinikfError
from tests.paths import ROOT

TOY = '''
"""A platform and a step kind that live outside minikf."""
import sys

from minikf.platforms.base import Platform
from minikf.runtime.logs import last_json_line
from minikf.steps.base import StepKind, StepOutcome


class ToyPlatform(Platform):
    name = "toy"
    capabilities = frozenset({"training"})

    def launch(self, argv, env, log_path, resources):
        return resources.spawn(argv, log_path, env={"TOY_PLATFORM": "yes", **env})


def run(ctx):
    code = "import json, os; print(json.dumps({'on_toy': os.environ.get('TOY_PLATFORM') == 'yes'}))"
    proc = ctx.platform.launch([sys.executable, "-c", code], {}, ctx.log_path, ctx.resources)
    proc.wait()
    return StepOutcome(metrics=last_json_line(ctx.log_path.read_text()))


KIND = StepKind("toy_echo", run)
'''

SCENARIO = """name: toy
requires: [training]
steps:
  - name: echo
    kind: toy_echo
    timeout: 60
    expect: ["on_toy == 1"]
"""


@pytest.fixture
def toy_plugin(tmp_path: Path) -> Path:
    """A folder holding the module and its dist-info, as `pip install toy-minikf` would leave."""
    site = tmp_path / "site"
    (site / "toy_minikf").mkdir(parents=True)
    (site / "toy_minikf" / "__init__.py").write_text(TOY)
    info = site / "toy_minikf-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-minikf\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [minikf.platforms]
        toy = toy_minikf:ToyPlatform

        [minikf.steps]
        toy_echo = toy_minikf:KIND
        """))
    return site


def _cli(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "minikf.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120, check=False)


def test_an_installed_plugin_adds_a_platform_and_a_step_kind(toy_plugin, tmp_path):
    scenario = tmp_path / "toy.yaml"
    scenario.write_text(SCENARIO)
    checked = _cli(toy_plugin, "scenarios", "validate", str(scenario), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    ran = _cli(toy_plugin, "run", str(scenario), "--platform", "toy", "--results",
               str(tmp_path / "r"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    result = json.loads((tmp_path / "r" / "results.json").read_text())
    assert result["platform"] == "toy" and result["status"] == "passed"
    assert result["steps"][0]["metrics"] == {"on_toy": True}


def test_without_the_plugin_the_names_are_unknown(tmp_path):
    scenario = tmp_path / "toy.yaml"
    scenario.write_text(SCENARIO)
    checked = _cli(tmp_path / "nothing", "scenarios", "validate", str(scenario), cwd=tmp_path)
    assert checked.returncode == 2 and "unknown step kind 'toy_echo'" in checked.stderr
    ran = _cli(tmp_path / "nothing", "run", "smoke", "--platform", "toy", cwd=tmp_path)
    assert ran.returncode == 2 and "unknown platform 'toy'; known: docker, kubernetes, local" in ran.stderr


def test_registering_in_code_and_its_errors():
    class Quiet(LocalPlatform):
        name = "quiet"

    PLATFORMS.register("quiet", Quiet)
    try:
        assert isinstance(get_platform("quiet"), Quiet)
        with pytest.raises(MinikfError, match="platform 'quiet' is registered already"):
            PLATFORMS.register("quiet", LocalPlatform)
        PLATFORMS.register("quiet", LocalPlatform, replace=True)
        assert type(get_platform("quiet")) is LocalPlatform
        PLATFORMS.register("not-a-platform", dict, replace=True)
        with pytest.raises(MinikfError, match="not a minikf.platforms.base.Platform subclass"):
            get_platform("not-a-platform")
    finally:
        PLATFORMS.unregister("quiet")
        PLATFORMS.unregister("not-a-platform")
    assert "quiet" not in PLATFORMS


def test_every_builtin_loads_as_what_it_claims():
    from minikf.steps.base import StepKind

    for name in STEP_KINDS.names():
        kind = STEP_KINDS.get(name)
        assert isinstance(kind, StepKind) and kind.name == name
    for name in ("local", "docker", "kubernetes"):
        assert issubclass(PLATFORMS.get(name), Platform)


def test_targets_load_lazily_and_only_once():
    registry = Registry("thing", "minikf.test-no-such-group", {"json": "json:dumps"})
    assert registry.names() == ["json"]
    assert registry.get("json") is json.dumps
    with pytest.raises(MinikfError, match=r"unknown thing 'yaml'; known: json"):
        registry.get("yaml")
