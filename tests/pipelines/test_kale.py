"""Notebook to pipeline with Kale: the shipped notebook compiles to IR that kfp accepts, broken
notebooks get one line naming the cell, and the host-run copy keeps Kale's files private.
(The `kale` scenario runs the notebook as a pipeline.)"""

from __future__ import annotations

import copy
import json
import logging
import stat
import subprocess
import sys

import pytest
import yaml

from minikf.engine.runner import run_scenario
from minikf.pipelines.kale import NotebookInvalid, compile_notebook, for_host_run
from minikf.runtime.errors import MinikfError
from minikf.scenario import load_scenario
from tests.paths import ROOT, SAMPLE

NOTEBOOK = ROOT / "notebooks" / "fashion-mnist-kale.ipynb"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("kale") / "fm.yaml"
    return compile_notebook(NOTEBOOK, out, image="example/runtime:1")


def _executors(package) -> dict:
    return list(yaml.safe_load_all(package.read_text()))[0]["deploymentSpec"]["executors"]


def test_the_shipped_notebook_compiles_to_ir_that_kfp_loads_and_recompiles(compiled, tmp_path):
    from kfp import compiler, components

    assert compiled.pipeline_name == "fashion-mnist-kale"
    assert compiled.steps["train"] == {"prev": ["load_data"], "inputs": ["x_train", "y_train"],
                                       "outputs": ["model"]}
    assert compiled.steps["evaluate"]["inputs"] == ["model", "x_test", "y_test"]
    assert compiled.parameters == {"mirrors": "https://fashion-mnist.s3-website.eu-central-1.amazonaws"
                                   ".com/", "sample": False, "epochs": 3, "batch_size": 32,
                                   "lr": 0.002, "seed": 0}
    assert compiled.metrics == ["accuracy", "train-loss"]
    executors = _executors(compiled.package)
    assert set(executors) == {"exec-load-data-step", "exec-train-step", "exec-evaluate-step"}
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "example/runtime:1"
        assert container["command"][:2] == ["sh", "-ec"]  # no per-task pip install from pypi.org
        assert "pip install" not in json.dumps(container)
    # kfp's own checks: its loader reads the package, its compiler writes the same spec again
    again = tmp_path / "again.yaml"
    compiler.Compiler().compile(components.load_component_from_file(str(compiled.package)), str(again))
    assert list(yaml.safe_load_all(again.read_text())) == list(yaml.safe_load_all(
        compiled.package.read_text()))
    assert stat.S_IMODE(compiled.package.stat().st_mode) & 0o022 == 0
    # importing Kale left this process's logging as it was
    assert logging.getLoggerClass().__name__ != "KaleLogger"
    assert logging.getLogRecordFactory().__name__ != "CustomLogRecord"


def _notebook(tmp_path, change, name="nb.ipynb"):
    nb = copy.deepcopy(json.loads(NOTEBOOK.read_text()))
    change(nb["cells"])
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    return path


def _tags(cell_index, *tags):
    def change(cells):
        cells[cell_index]["metadata"]["tags"] = list(tags)
    return change


def _source(cell_index, old, new):
    def change(cells):
        cells[cell_index]["source"] = "".join(cells[cell_index]["source"]).replace(old, new)
    return change


def _drop_source(cells):
    del cells[3]["source"]


BROKEN = {
    "cycle": (_tags(4, "step:load_data", "prev:evaluate"),
              "cell 5 (step:load_data, prev:evaluate): the prev: tags make a cycle: load_data follows "
              "evaluate follows train follows load_data"),
    "unknown prev": (_tags(6, "step:train", "prev:nothere"),
                     "cell 7 (step:train, prev:nothere): prev:nothere names no step (steps: "
                     "load_data, train, evaluate)"),
    "prev below": (lambda cells: (_tags(4, "step:load_data", "prev:train")(cells),
                                  _tags(6, "step:train")(cells)),
                   "cell 5 (step:load_data, prev:train): prev:train names a step that starts below, "
                   "in cell 7"),
    "foreign tag": (_tags(6, "parameters"), "cell 7: tag 'parameters' is not in Kale's tag language"),
    "prev without step": (_tags(6, "prev:load_data"), "cell 7: a prev: tag needs a step:NAME tag"),
    "syntax": (_source(5, "print(", "print(("), "cell 6: invalid Python on line 1"),
    "no source": (_drop_source, "cell 4: not a valid notebook: 'source' is a required property"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_notebook_gets_one_line_naming_the_cell(tmp_path, case):
    change, expected = BROKEN[case]
    path = _notebook(tmp_path, change)
    with pytest.raises(NotebookInvalid) as caught:
        compile_notebook(path, tmp_path / "out.yaml")
    assert caught.value.message.startswith(f"{path}: ")
    assert expected in caught.value.message
    assert "\n" not in caught.value.message and caught.value.exit_code == 2
    assert not (tmp_path / "out.yaml").exists()


def test_a_name_no_earlier_step_defines_is_named_with_its_cell(tmp_path):
    path = _notebook(tmp_path, _source(7, "x_test", "x_tset"))
    with pytest.raises(NotebookInvalid, match=r"cell 8 \(step:evaluate, prev:train\): step evaluate "
                       r"uses 'x_tset', which no earlier step defines \(it follows train\)"):
        compile_notebook(path, tmp_path / "out.yaml")


def test_not_json_and_not_a_notebook(tmp_path):
    (bad := tmp_path / "bad.ipynb").write_text('{"cells": [')
    with pytest.raises(NotebookInvalid, match="not a notebook \\(invalid JSON: Expecting value: "
                       "line 1 column 12"):
        compile_notebook(bad, tmp_path / "o.yaml")
    bad.write_text('{"metadata": {}}')
    with pytest.raises(NotebookInvalid, match="no list of cells"):
        compile_notebook(bad, tmp_path / "o.yaml")
    with pytest.raises(NotebookInvalid, match="cannot read it"):
        compile_notebook(tmp_path / "missing.ipynb", tmp_path / "o.yaml")


def test_block_tags_of_minikfs_kale_are_read_as_step_tags(tmp_path):
    def to_block(cells):
        for cell in cells:
            tags = cell["metadata"].get("tags", [])
            cell["metadata"]["tags"] = [t.replace("step:", "block:") for t in tags]
    path = _notebook(tmp_path, to_block, "old.ipynb")
    assert "block:train" in path.read_text()
    compiled = compile_notebook(path, tmp_path / "old.yaml", image="x:1")
    assert list(compiled.steps) == ["load_data", "train", "evaluate"]


def test_cli_compile_prints_the_steps_and_a_broken_notebook_as_one_line(tmp_path, compiled):
    from typer.testing import CliRunner

    from minikf.cli import app

    ok = CliRunner().invoke(app, ["notebooks", "compile", str(NOTEBOOK), "-o", str(tmp_path / "p.yaml"),
                                  "--json"])
    assert ok.exit_code == 0, ok.output
    assert "step train after load_data, takes x_train, y_train" in ok.output
    assert json.loads(ok.output.splitlines()[-1])["steps"] == 3
    bad = _notebook(tmp_path, _tags(4, "step:load_data", "prev:evaluate"))
    proc = subprocess.run([sys.executable, "-m", "minikf.cli", "notebooks", "compile", str(bad),
                           "-o", str(tmp_path / "bad.yaml")], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "cell 5 (step:load_data, prev:evaluate)" in proc.stderr


def test_a_host_run_keeps_kales_tmp_files_in_the_runs_private_folder(compiled, tmp_path):
    private = tmp_path / "private"
    out = for_host_run(compiled.package, private, tmp_path / "host.yaml")
    text = out.read_text()
    assert '"/tmp/marshal"' not in text and "/tmp/mlpipeline-metrics.json" not in text
    for name, executor in _executors(out).items():
        code = executor["container"]["command"][-1]
        assert f'set_data_dir("{private}/marshal")' in code
        assert {"name": "HOME", "value": str(private / "home")} in executor["container"]["env"]
        if name != "exec-load-data-step":  # the steps that report pipeline-metrics
            assert code.count(f'KFP_UI_METRICS_FILE_PATH = "{private}/metrics-{name}.json"') == 2
    for folder in (private, private / "marshal", private / "home"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_package_kale_did_not_write_is_refused_for_a_host_run(tmp_path):
    from kfp import compiler

    from minikf.pipelines.basics import sequential

    package = tmp_path / "seq.yaml"
    compiler.Compiler().compile(sequential, str(package))
    with pytest.raises(MinikfError, match="executor exec-add is not the code Kale .* generates"):
        for_host_run(package, tmp_path / "p", tmp_path / "o.yaml")


def test_the_pipeline_step_wants_a_pipeline_or_a_notebook(write_scenario, local, tmp_path):
    for args, expected in (
            ({"pipeline": "basics-sequential", "notebook": str(NOTEBOOK)}, "one of them"),
            ({"notebook": str(tmp_path / "nope.ipynb")}, "nope.ipynb: no such file")):
        path = write_scenario(yaml.safe_dump({"name": "n", "steps": [
            {"name": "p", "kind": "pipeline", "args": args}]}))
        result = run_scenario(load_scenario(path), local, tmp_path / "r")
        assert result.status == "failed" and expected in result.steps[0].message


def test_the_shipped_notebook_also_runs_as_a_plain_notebook():
    """Kale's tags change nothing when the notebook is run top to bottom (the sample, 1 epoch)."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "skip" not in c.metadata.get("tags", [])]
    scope: dict = {}
    for cell in cells:
        source = cell.source
        if "pipeline-parameters" in cell.metadata.get("tags", []):
            source += f"\nmirrors = {str(SAMPLE)!r}\nsample = True\nepochs = 1"
        if "pipeline-metrics" in cell.metadata.get("tags", []):
            continue
        exec(compile(source, "cell", "exec"), scope)  # noqa: S102 - the notebook's own code
    assert 0.1 < scope["accuracy"] <= 1 and scope["train_loss"] > 0
