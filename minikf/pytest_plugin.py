"""pytest plugin: each scenarios/*.yaml becomes a test item (`pytest e2e --platform local`).

Modelled on pytest's own non-Python collection example, so `-k` and xdist work for free.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minikf")
    group.addoption("--platform", default="local", help="minikf platform for scenario items")
    group.addoption("--scenario", action="append", default=[], help="only these scenario names")
    group.addoption("--minikf-results", default=None, help="keep each scenario's results here")
    group.addoption("--kubeconfig", default=None, help="kubernetes platform: kubeconfig file")
    group.addoption("--namespace", default=None, help="kubernetes platform: namespace")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: a scenario collected from scenarios/*.yaml")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix in (".yaml", ".yml") and file_path.parent.name == "scenarios":
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFailure(Exception):
    pass


class ScenarioFile(pytest.File):
    def collect(self):
        from minikf.runtime.errors import ScenarioInvalid
        from minikf.scenario import load_scenario

        wanted = self.config.getoption("--scenario")
        try:
            scenario = load_scenario(self.path)
        except ScenarioInvalid as exc:
            raise self.CollectError(str(exc)) from exc
        if not wanted or scenario.name in wanted:
            yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.add_marker("e2e")

    def runtest(self) -> None:
        from minikf.engine.runner import run_scenario
        from minikf.kube import cluster_options
        from minikf.platforms import get_platform

        name = self.config.getoption("--platform")
        options = cluster_options(name, self.config.getoption("--kubeconfig"),
                                  self.config.getoption("--namespace"))
        platform = get_platform(name, **options)
        keep = self.config.getoption("--minikf-results")
        worker = getattr(self.config, "workerinput", {}).get("workerid", "main")
        if keep:
            results = Path(keep) / self.scenario.name
        else:
            results = self.config._tmp_path_factory.mktemp(f"{self.scenario.name}-{worker}")
        result = run_scenario(self.scenario, platform, results)
        self.user_properties.append(("results", str(results)))
        if result.status == "skipped":
            pytest.skip(result.message)
        if result.status != "passed":
            raise ScenarioFailure(result.message)

    def repr_failure(self, excinfo, style=None):
        from minikf.runtime.errors import MinikfError

        if isinstance(excinfo.value, ScenarioFailure):
            return f"scenario {self.scenario.name} failed: {excinfo.value}"
        if isinstance(excinfo.value, MinikfError):  # e.g. an unreachable cluster: one line
            return f"scenario {self.scenario.name}: {excinfo.value.message}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, 0, f"scenario: {self.scenario.name}"
