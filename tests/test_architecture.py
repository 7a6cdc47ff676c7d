"""The package's shape: the layers import downwards only.

The same check a person runs with `python tools/import_graph.py`; imports inside functions and
under TYPE_CHECKING count, since they are dependencies all the same.
"""

from __future__ import annotations

import importlib.util

from tests.paths import ROOT

_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)

# Lowest first: a unit may import only units on an earlier line (or its own).
LAYERS = [
    {"runtime", "workload"},
    {"plugins", "results", "images"},
    {"scenario", "pipelines"},
    {"kube", "metadata"},
    {"platforms"},
    {"profiles", "tuning", "appliance"},
    {"notebooks", "bench", "snapshots"},
    {"steps", "ui"},
    {"engine"},
    {"commands", "pytest_plugin"},
    {"cli"},
]


def test_no_two_subpackages_import_each_other_directly_or_around_a_cycle():
    edges = import_graph.graph()
    assert import_graph.cycles(edges) == []


def test_every_import_points_down_the_layers():
    level = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
    edges = import_graph.graph()
    assert set(edges) <= set(level), f"a unit missing from LAYERS: {set(edges) - set(level)}"
    upward = [f"{a} -> {b} ({', '.join(sorted(set(files)))})"
              for a, targets in edges.items() for b, files in targets.items()
              if level[b] >= level[a] and a != b]
    assert upward == []


def test_the_workload_runs_alone():
    """What runs in containers and pods imports nothing else of minikf."""
    assert not import_graph.graph().get("workload")


def test_a_cycle_is_found_where_there_is_one():
    edges = {"a": {"b": ["a.py"]}, "b": {"c": ["b.py"]}, "c": {"a": ["c.py"]}, "d": {"a": ["d.py"]}}
    assert import_graph.cycles(edges) == [["a", "b", "c"]]


def test_the_engine_and_the_steps_know_platforms_only_by_their_contract():
    """No step kind and no part of the engine imports a concrete platform, or another step."""
    for folder in ("engine", "steps"):
        for path in (ROOT / "minikf" / folder).glob("*.py"):
            text = path.read_text()
            for concrete in ("platforms.local", "platforms.docker", "platforms.kubernetes",
                             "platforms.warm", "minikf.kube"):
                assert concrete not in text, f"{path.name} imports {concrete}"
            if folder == "steps":
                others = [line for line in text.splitlines()
                          if line.lstrip().startswith("from minikf.steps.")
                          and not line.lstrip().startswith("from minikf.steps.base ")]
                assert others == [], f"{path.name}: {others}"
