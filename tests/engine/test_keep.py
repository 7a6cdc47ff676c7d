"""What the results dir keeps of the work dir: models and small files copied, the rest marked."""

from __future__ import annotations

from minikf.engine import keep
from minikf.results import RunResult, StepResult


def test_models_and_small_files_are_copied_data_and_big_files_marked_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(keep, "SMALL_LIMIT", 100)
    work, results, elsewhere = tmp_path / "work", tmp_path / "results", tmp_path / "server-root"
    for folder in (work / "model", work / "data", elsewhere):
        folder.mkdir(parents=True)
    (work / "model" / "model.pt").write_bytes(b"w" * 1000)  # a model: kept whatever its size
    (work / "data" / "train.npz").write_bytes(b"d")  # a data set: never copied
    (work / "small.txt").write_text("ok")
    (work / "big.log").write_bytes(b"x" * 101)
    outputs = {"model_dir": str(work / "model"), "data_dir": str(work / "data"),
               "notes_file": str(work / "small.txt"), "trace_file": str(work / "big.log"),
               "root_dir": str(elsewhere), "url": "http://127.0.0.1:1", "accuracy": 0.5,
               "artifacts": [{"name": "metrics", "kind": "artifact", "path": str(work / "small.txt")}]}
    run = RunResult("r", "s", "local", steps=[StepResult("make", "command", "passed",
                                                         outputs=outputs)])
    assert keep.keep_outputs(run, work, results) == []
    out, gone = run.steps[0].outputs, run.steps[0].gone
    assert out["model_dir"] == str(results / "outputs" / "make" / "model_dir")
    assert (results / "outputs" / "make" / "model_dir" / "model.pt").stat().st_size == 1000
    assert (results / "outputs" / "make" / "notes_file.txt").read_text() == "ok"
    assert out["artifacts"][0]["path"] == str(results / "outputs" / "make" / "artifacts.metrics.txt")
    assert out["data_dir"] is None and out["trace_file"] is None
    assert gone == {"data_dir": str(work / "data"), "trace_file": str(work / "big.log")}
    assert out["root_dir"] == str(elsewhere) and out["url"] == "http://127.0.0.1:1"
