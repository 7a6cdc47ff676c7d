"""The tuning spec as a Katib Experiment, and the trial command Katib would run.

No Katib controller can run here (no Kubernetes), so the manifest is checked for the fields
Katib v1beta1 reads; the trial command itself runs for real and prints what Katib's StdOut
collector parses.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from minikf.tuning.katib import experiment
from minikf.tuning.spec import parse_spec
from minikf.workload import fashion_data
from tests.paths import SAMPLE

SPEC = {"objective": {"metric": "accuracy", "goal": 0.9}, "max_trials": 6, "parallel_trials": 2,
        "parameters": [{"name": "lr", "type": "double", "min": 0.0003, "max": 0.3, "log": True},
                       {"name": "batch_size", "type": "categorical", "values": [16, 32]}]}
# The shape of Katib's default StdOut metrics filter: `name=value` lines.
KATIB_FILTER = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")


def test_experiment_carries_objective_budget_stopping_and_space():
    manifest = experiment(parse_spec(SPEC), "fm-tune", "kubeflow-user", "minikf/runtime:1", ["fm-data-0"])
    assert manifest["apiVersion"] == "kubeflow.org/v1beta1" and manifest["kind"] == "Experiment"
    spec = manifest["spec"]
    assert spec["objective"] == {"type": "maximize", "objectiveMetricName": "accuracy",
                                 "additionalMetricNames": ["loss"], "goal": 0.9}
    assert (spec["maxTrialCount"], spec["parallelTrialCount"], spec["maxFailedTrialCount"]) == (6, 2, 1)
    assert spec["earlyStopping"]["algorithmName"] == "medianstop"
    lr, batch = spec["parameters"]
    assert lr == {"name": "lr", "parameterType": "double",
                  "feasibleSpace": {"min": "0.0003", "max": "0.3", "distribution": "logUniform"}}
    assert batch["feasibleSpace"] == {"list": ["16", "32"]}
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == spec["trialTemplate"]["primaryContainerName"]
    command = container["command"]
    assert command[command.index("--lr") + 1] == "${trialParameters.lr}"
    assert command[command.index("--epochs") + 1] == "1"  # not searched: the fixed default
    # --data names a directory the pod has: the data ConfigMaps projected there
    data_dir = command[command.index("--data") + 1]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == data_dir
    (volume,) = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["volumes"]
    assert volume["name"] == mount["name"]
    assert volume["projected"]["sources"] == [{"configMap": {"name": "fm-data-0"}}]
    with pytest.raises(ValueError, match="needs the ConfigMaps"):
        experiment(parse_spec(SPEC), "fm-tune", "kubeflow-user", "minikf/runtime:1", [])


@pytest.mark.slow
def test_trial_command_prints_what_katib_collects(tmp_path):
    sample = SAMPLE
    fashion_data.download(tmp_path / "raw", [str(sample)], dict(fashion_data.SAMPLE_FILES))
    fashion_data.preprocess(tmp_path / "raw", tmp_path / "data")
    proc = subprocess.run([sys.executable, "-m", "minikf.tuning.katib_trial", "--data",
                           str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--epochs", "2",
                           "--batch-size", "32", "--lr", "0.003"],
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    collected = [m.group(1, 2) for line in proc.stdout.splitlines() if (m := KATIB_FILTER.match(line))]
    names = [name for name, _ in collected]
    assert names.count("accuracy") == 2 and names.count("loss") == 2  # one of each per epoch
    assert all(0.0 <= float(v) <= 1.0 for n, v in collected if n == "accuracy")
