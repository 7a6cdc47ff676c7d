"""Lineage store, the engine's run-end hook and `minikf runs ...`, on a real SQLite file.

The scenarios here use the `command` step to produce a small "model" and "data" so each test
takes well under a second; scenarios/metadata.yaml does the same with real training.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from minikf.engine.runner import run_scenario
from minikf.metadata import default_db_path
from minikf.metadata.store import Artifact, MetadataStore, RunRecord
from minikf.runtime.errors import MinikfError
from minikf.scenario import load_scenario

MAKE = ("import json,os,sys; w=sys.argv[1]; os.makedirs(w+'/model',exist_ok=True); "
        "os.makedirs(w+'/data',exist_ok=True); open(w+'/model/model.pt','w').write('weights'+sys.argv[2]); "
        "open(w+'/data/train.csv','w').write('x,y'); "
        "print(json.dumps({'model_dir': w+'/model', 'data_dir': w+'/data', "
        "'accuracy': 0.5+float(sys.argv[2])}))")

SCENARIO = """name: tiny
params:
  lr: 0.1
  token: ${{secrets.api}}
steps:
  - name: make
    kind: command
    args:
      argv: [python, -c, "{make}", "${{workdir}}", "{n}"]
      secret: ${{secrets.api}}
"""


@pytest.fixture
def db(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home" / "metadata.db"
    monkeypatch.setenv("MINIKF_METADATA_DB", str(path))
    return path


def _run(write_scenario, local, tmp_path, n: str = "0", params: dict | None = None, name="s.yaml"):
    path = write_scenario(SCENARIO.format(make=MAKE, n=n), name=name)
    return run_scenario(load_scenario(path), local, tmp_path / f"results-{name}", params=params)


def test_default_path_follows_minikf_home(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIKF_METADATA_DB", raising=False)
    monkeypatch.setenv("MINIKF_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "metadata.db"


def test_store_round_trip_and_run_ids_by_prefix(tmp_path):
    record = RunRecord("abc123", "s", "local", "passed", "2026-01-01T00:00:00", code_version="git x",
                       params={"scenario": {"lr": 0.1, "layers": [1, 2]}},
                       artifacts=[Artifact("train", "model", "model_dir/m.pt", "/m.pt", "f" * 64, 3)],
                       metrics={"evaluate": {"accuracy": 0.9}})
    with MetadataStore(tmp_path / "m.db") as store:
        store.save(record)
        store.save(RunRecord("abd999", "s", "local", "failed", "2026-01-02T00:00:00"))
        assert store.get(store.resolve("abc")) == record
        assert [r.run_id for r in store.list_runs()] == ["abd999", "abc123"]
        assert store.runs_with_artifact("f" * 64, kind="model") == ["abc123"]
        with pytest.raises(MinikfError, match="ambiguous"):
            store.resolve("ab")
        with pytest.raises(MinikfError, match="no run 'zz'"):
            store.resolve("zz")


def test_engine_records_data_model_params_and_metrics(write_scenario, local, tmp_path, db):
    result = _run(write_scenario, local, tmp_path)
    assert result.status == "passed", result.message
    with MetadataStore(db) as store:
        run = store.get(result.run_id)
    assert run.status == "passed" and run.code_version and run.image
    by_name = {a.name: a for a in run.artifacts}
    assert by_name["model_dir/model.pt"].kind == "model"
    assert by_name["model_dir/model.pt"].sha256 == hashlib.sha256(b"weights0").hexdigest()
    assert by_name["data_dir/train.csv"].kind == "dataset"
    assert run.params["scenario"] == {"lr": 0.1, "token": "<secret>"}
    assert run.params["make"]["secret"] == "<secret>"
    assert run.params["make"]["argv"][3] == "${workdir}"  # not this run's temp path
    assert run.metrics["make"]["accuracy"] == 0.5
    worked_in = Path(by_name["model_dir/model.pt"].uri)  # where it was made, in the work dir
    assert not worked_in.exists()  # cleanup still happened
    kept = Path(result.steps[0].outputs["model_dir"])  # the results dir keeps the model
    assert (kept / "model.pt").read_bytes() == b"weights0"
    assert result.steps[0].outputs["data_dir"] is None and "data_dir" in result.steps[0].gone


def test_an_unwritable_store_does_not_fail_the_run(write_scenario, local, tmp_path, monkeypatch):
    (tmp_path / "a-dir.db").mkdir()
    monkeypatch.setenv("MINIKF_METADATA_DB", str(tmp_path / "a-dir.db"))
    result = _run(write_scenario, local, tmp_path)
    assert result.status == "passed"
    assert "metadata: not recorded" in result.message


def test_recording_can_be_turned_off(write_scenario, local, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKF_METADATA_DB", "off")
    monkeypatch.chdir(tmp_path)
    assert _run(write_scenario, local, tmp_path).status == "passed"
    assert not (tmp_path / "off").exists()


def _cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minikf.cli", "runs", *args, "--db", str(db)],
                          capture_output=True, text=True, check=False)


def test_runs_list_show_compare_and_model_lookup(write_scenario, local, tmp_path, db):
    first = _run(write_scenario, local, tmp_path, n="0")
    second = _run(write_scenario, local, tmp_path, n="1", params={"lr": 0.5}, name="t.yaml")
    listed = _cli("list", db=db)
    assert listed.returncode == 0 and first.run_id in listed.stdout and second.run_id in listed.stdout
    shown = _cli("show", second.run_id[:6], db=db)
    assert shown.returncode == 0, shown.stderr
    assert hashlib.sha256(b"x,y").hexdigest() in shown.stdout  # the data, by checksum
    assert "lr=0.5" in shown.stdout and "accuracy=1.5" in shown.stdout
    model = tmp_path / "model.pt"
    model.write_text("weights1")  # a copy of the second run's model, anywhere
    traced = json.loads(_cli("show", "--model", str(model), "--json", db=db).stdout)
    assert traced["run_id"] == second.run_id
    compared = _cli("compare", first.run_id, second.run_id, db=db).stdout
    assert "data: same" in compared and "model: different" in compared
    assert "scenario.lr" in compared and "make.argv" in compared  # the argv carried n
    assert "+1" in compared  # accuracy delta


def test_runs_errors_are_one_clear_line(tmp_path, db):
    missing = _cli("list", db=tmp_path / "none.db")
    assert missing.returncode == 2 and "no metadata store at" in missing.stderr
    MetadataStore(db).close()
    unknown = _cli("show", "nope", db=db)
    assert unknown.returncode == 2 and "no run 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    both = _cli("show", db=db)
    assert both.returncode == 2 and "give a RUN id or --model" in both.stderr


def test_only_files_the_run_produced_are_hashed(write_scenario, local, tmp_path, db):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_text("not this run's")
    path = write_scenario(f"""name: outside
steps:
  - name: point
    kind: command
    args:
      argv: [python, -c, "import json; print(json.dumps({{'cache_dir': '{outside}'}}))"]
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    with MetadataStore(db) as store:
        assert store.get(result.run_id).artifacts == []


def test_image_is_what_the_platform_describes():
    from minikf.metadata.lineage import image_of

    assert image_of({"python": "3.11"}) == "none: host processes (python 3.11)"
    assert image_of({"runtime_image": "sha256:ab", "server_image": None}) == "runtime_image=sha256:ab"
    assert image_of({"image": "minikf/runtime:1"}) == "image=minikf/runtime:1"


def test_typed_artifacts_a_step_declares_are_recorded(write_scenario, local, tmp_path, db):
    """The `pipeline` step declares a KFP run's Datasets and Models this way."""
    make = ("import json,os,sys; w=sys.argv[1]; os.makedirs(w+'/t/ckpt'); "
            "open(w+'/t/ckpt/epoch-1.pt','w').write('c'); open(w+'/t/model.pt','w').write('m'); "
            "open(w+'/raw.gz','w').write('d'); print(json.dumps({'artifacts': ["
            "{'kind': 'model', 'name': 'train/model', 'path': w+'/t'}, "
            "{'kind': 'dataset', 'name': 'download/raw', 'path': w+'/raw.gz'}]}))")
    path = write_scenario(f"""name: typed
steps:
  - name: pipeline
    kind: command
    args: {{argv: [python, -c, "{make}", "${{workdir}}"]}}
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    with MetadataStore(db) as store:
        run = store.get(result.run_id)
    kinds = {a.name: a.kind for a in run.artifacts}
    assert kinds == {"train/model/model.pt": "model", "train/model/ckpt/epoch-1.pt": "model",
                     "download/raw/raw.gz": "dataset"}
    from minikf.metadata.report import model_digest

    assert model_digest(run) == hashlib.sha256(b"m").hexdigest()[:12]  # the model, not a checkpoint


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_and_its_folder_are_for_their_owner_only(tmp_path, write_scenario, local,
                                                             monkeypatch):
    """What the store holds (parameters, paths, metrics) is the user's: 0700 / 0600 whatever
    the umask, its WAL files too."""
    home = tmp_path / "home" / ".minikf"
    monkeypatch.setenv("MINIKF_METADATA_DB", str(home / "metadata.db"))
    old = os.umask(0o022)
    try:
        result = _run(write_scenario, local, tmp_path)
        with MetadataStore(home / "metadata.db") as store:
            assert store.get(result.run_id).status == "passed"
            found = sorted(p.name for p in home.iterdir())
            modes = {name: _mode(home / name) for name in found}
    finally:
        os.umask(old)
    assert _mode(home) == 0o700
    assert "metadata.db-wal" in found and set(modes.values()) == {0o600}, modes


def test_an_existing_store_others_can_read_is_tightened(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    path = shared / "metadata.db"
    with MetadataStore(path) as store:
        store.save(RunRecord("r1", "s", "local", "passed", "2026-01-01T00:00:00"))
    os.chmod(path, 0o644)
    with MetadataStore(path) as store:
        assert store.get("r1").status == "passed"
    assert _mode(path) == 0o600
    assert _mode(shared) == 0o755  # a folder the user chose for the file is left as it is
