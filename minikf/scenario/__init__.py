"""Scenario files: schema, loading with line numbers, expectations."""

from minikf.scenario.schema import Scenario, Step, load_scenario, validate_paths

__all__ = ["Scenario", "Step", "load_scenario", "validate_paths"]
