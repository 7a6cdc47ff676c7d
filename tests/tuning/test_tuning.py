"""Tuning: the spec is checked before any trial; a real small search names its best trial,
stops a diverging trial early, and counts failed trials against the budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minikf.engine.runner import run_scenario
from minikf.runtime.errors import MinikfError
from minikf.scenario import load_scenario
from minikf.tuning.spec import parse_spec
from minikf.workload import fashion_data
from tests.paths import SAMPLE

LR = {"name": "lr", "type": "double", "min": 0.001, "max": 0.01, "log": True}


@pytest.mark.parametrize("spec, expected", [
    ({"parameters": []}, "spec.parameters: the search space is empty"),
    ({"parameters": [{**LR, "min": 0.1}]},
     "spec.parameters[0] (lr): empty range: min 0.1 must be below max 0.01"),
    ({"parameters": [{"name": "momentum", "type": "double", "min": 0, "max": 1}]},
     "unknown parameter 'momentum': the trainer takes lr, batch_size, epochs"),
    ({"parameters": [{"name": "batch_size", "type": "categorical", "values": []}]},
     "spec.parameters[0] (batch_size): values: a categorical parameter needs at least one value"),
    ({"parameters": [{"name": "batch_size", "type": "categorical", "values": [16, 0]}]},
     "batch_size must lie in [1, 4096], got 0"),
    ({"parameters": [{"name": "epochs", "type": "double", "min": 1, "max": 3}]},
     "epochs is an integer: use type int or categorical"),
    ({"parameters": [{**LR, "min": 0}]}, "log scale needs min > 0"),
    ({"parameters": [LR, LR]}, "lr given more than once"),
    ({"parameters": [LR], "objective": {"metric": "loss", "type": "maximize"}},
     "type 'maximize' makes no sense for 'loss'"),
    ({"parameters": [LR], "max_trials": 2, "parallel_trials": 3}, "parallel_trials 3 exceeds max_trials 2"),
    ({"parameters": [LR], "max_trials": 0}, "spec.max_trials: Input should be greater than or equal to 1"),
    ({"parameters": [LR], "sampler": "grid"}, "spec.sampler: Extra inputs are not permitted"),
])
def test_invalid_specs_name_the_field(spec, expected):
    with pytest.raises(MinikfError) as info:
        parse_spec(spec, "tune")
    assert expected in info.value.message
    assert info.value.message.startswith("step 'tune': invalid tuning spec: ")


def test_a_good_spec_fills_katib_defaults():
    spec = parse_spec({"parameters": [LR], "objective": {"metric": "loss"}})
    assert spec.objective.type == "minimize" and spec.early_stopping.algorithm == "median"


SCENARIO = """name: tune
steps:
  - name: tune
    kind: tune
    timeout: 300
    args:
      data_dir: {data}
      spec: {spec}
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fm")
    fashion_data.download(root / "raw", [str(SAMPLE)], dict(fashion_data.SAMPLE_FILES))
    fashion_data.preprocess(root / "raw", root / "data")
    return root / "data"


def _run(write_scenario, local, tmp_path, data, spec: dict):
    path = write_scenario(SCENARIO.format(data=data, spec=json.dumps(spec)))
    return run_scenario(load_scenario(path), local, tmp_path / "r", keep_workdir=False)


def test_a_bad_space_fails_before_any_trial(write_scenario, local, tmp_path):
    result = _run(write_scenario, local, tmp_path, tmp_path / "nowhere", {"parameters": []})
    assert result.status == "failed"
    assert "spec.parameters: the search space is empty" in result.steps[0].message
    assert not (tmp_path / "r" / "logs" / "tune").exists()  # no trial ever started


def test_missing_data_is_named(write_scenario, local, tmp_path):
    result = _run(write_scenario, local, tmp_path, tmp_path, {"parameters": [LR]})
    assert f"args.data_dir {tmp_path} lacks train.npz, test.npz" in result.steps[0].message


@pytest.mark.slow
@pytest.mark.parametrize("platform_name", ["local", "docker"])
def test_search_names_best_trial_and_stops_a_diverging_one(write_scenario, request, tmp_path,
                                                           data_dir, platform_name):
    """On docker the trials' workers are containers: the pruned one is stopped as a container."""
    platform = request.getfixturevalue("local" if platform_name == "local" else "docker_platform")
    # Seed 6 draws lr 0.003, 0.003, 0.5 (checked with optuna's RandomSampler): two good trials
    # complete, then the diverging one must be stopped after its first epoch.
    spec = {"algorithm": "random", "seed": 6, "max_trials": 3, "parallel_trials": 1,
            "early_stopping": {"min_trials_required": 2, "start_step": 1},
            "parameters": [{"name": "lr", "type": "categorical", "values": [0.003, 0.5]},
                           {"name": "epochs", "type": "categorical", "values": [2]}]}
    result = _run(write_scenario, platform, tmp_path, data_dir, spec)
    assert result.status == "passed", result.message
    step = result.steps[0]
    report = json.loads((tmp_path / "r" / "tuning" / "tune.json").read_text())
    states = {t["number"]: (t["state"], t["params"]["lr"], t["epochs_run"]) for t in report["trials"]}
    assert step.metrics["best_lr"] == 0.003, states
    complete = [t["value"] for t in report["trials"] if t["state"] == "COMPLETE"]
    assert step.metrics["best_accuracy"] == max(complete)
    assert step.metrics["best_margin"] == pytest.approx(max(complete) - min(complete))
    pruned = [s for s in states.values() if s[0] == "PRUNED"]
    assert pruned == [("PRUNED", 0.5, 1)], states
    assert (tmp_path / "r" / "tuning" / "best-model" / "model.pt").is_file()
    assert step.outputs["best_params"]["lr"] == 0.003


@pytest.mark.slow
def test_failed_trials_count_against_the_budget(write_scenario, local, tmp_path, data_dir,
                                                monkeypatch):
    monkeypatch.setenv("MINIKF_TEST_KILL_RANK", "0")  # the worker's own test hook: rank 0 dies
    spec = {"max_trials": 3, "parallel_trials": 1, "max_failed_trials": 0, "parameters": [LR]}
    result = _run(write_scenario, local, tmp_path, data_dir, spec)
    message = result.steps[0].message
    assert result.status == "failed"
    assert "1 trials failed (max_failed_trials 0)" in message
    assert "worker 0 exited with code 7" in message and "trial-0-worker-0.log" in message


@pytest.mark.slow
def test_a_search_cut_by_its_timeout_leaves_no_worker(write_scenario, local, tmp_path, data_dir):
    import time

    import psutil

    spec = {"max_trials": 50, "parallel_trials": 2, "max_failed_trials": 50,
            "early_stopping": {"algorithm": "none"},
            "parameters": [LR, {"name": "epochs", "type": "categorical", "values": [3]}]}
    path = write_scenario(SCENARIO.format(data=data_dir, spec=json.dumps(spec))
                          .replace("timeout: 300", "timeout: 8"))
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert result.steps[0].status == "timeout"
    time.sleep(2)  # give a trial thread that outlived its step the chance to start a worker

    def ours(proc) -> bool:
        try:
            return str(data_dir) in " ".join(proc.cmdline())
        except psutil.Error:
            return False

    assert [p.pid for p in psutil.process_iter() if ours(p)] == []
