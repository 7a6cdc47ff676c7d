"""The Fashion-MNIST KFP pipeline: compiles to IR, and a failing task is named."""

import subprocess
import sys

import yaml

from minikf.engine.runner import run_scenario
from minikf.scenario import load_scenario


def test_compile_writes_kfp_ir(tmp_path):
    out = tmp_path / "fm.yaml"
    proc = subprocess.run([sys.executable, "-m", "minikf.cli", "compile", "fashion-mnist",
                           "-o", str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    ir = yaml.safe_load(out.read_text())
    assert ir["pipelineInfo"]["name"] == "fashion-mnist"
    tasks = ir["root"]["dag"]["tasks"]
    assert set(tasks) == {"download", "preprocess", "train", "evaluate"}
    assert tasks["evaluate"]["dependentTasks"] == ["preprocess", "train"]
    assert "sample" in ir["root"]["inputDefinitions"]["parameters"]


def test_failing_task_is_named_with_its_log(write_scenario, local, tmp_path):
    path = write_scenario(f"""name: broken
steps:
  - name: pipeline
    kind: pipeline
    args:
      pipeline: fashion-mnist
      arguments: {{mirrors: "{tmp_path}/no-such-mirror", sample: true}}
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert result.status == "failed"
    message = result.steps[0].message
    assert "download" in message and "FAILURE" in message
    assert "pipeline.log" in message
