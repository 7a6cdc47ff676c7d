"""Snapshots: the content-addressed store (dedup, private modes, corruption named), snapshots of a
real run and of a notebook folder, restore, a re-run that reads the same data, and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from minikf.engine.runner import run_scenario
from minikf.metadata import default_db_path
from minikf.metadata.store import MetadataStore
from minikf.profiles import create_profile
from minikf.runtime.errors import MinikfError
from minikf.scenario import load_scenario
from minikf.snapshots import SnapshotCorrupted, SnapshotStore, store_for
from minikf.snapshots.capture import snapshot_notebook, snapshot_run
from minikf.snapshots.restore import compare, plan_rerun, restore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MINIKF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_objects_are_stored_once_by_sha256_and_private(tmp_path):
    store = SnapshotStore(tmp_path / "store")
    (a := tmp_path / "a.bin").write_bytes(b"same bytes")
    (b := tmp_path / "b.bin").write_bytes(b"same bytes")
    first, second = store.put(a), store.put(b)
    assert first.sha256 == second.sha256 and first.new and not second.new
    assert store.put_bytes(b"same bytes").new is False
    assert store.usage() == (1, 10)
    obj = store.object_path(first.sha256)
    assert obj.read_bytes() == b"same bytes" and mode(obj) == 0o600
    for folder in (store.root, store.objects, obj.parent):
        assert mode(folder) == 0o700
    assert list(store.objects.glob(".incoming-*")) == []


def _manifest(store: SnapshotStore, files: dict[str, bytes]) -> dict:
    entries = []
    for path, data in files.items():
        stored = store.put_bytes(data)
        entries.append({"path": path, "role": "data", "sha256": stored.sha256, "size": stored.size,
                        "mode": 0o644})
    snap = store.save_manifest({"kind": "notebook", "created": "2026-01-01T00:00:00", "files": entries})
    return store.load(snap)


def test_a_corrupted_object_is_named_with_both_hashes_and_leaves_no_half_restore(tmp_path):
    store = SnapshotStore(tmp_path / "store")
    manifest = _manifest(store, {"notebook/a.txt": b"alpha", "notebook/b.txt": b"beta"})
    assert store.verify(manifest) == 2
    victim = manifest["files"][1]
    obj = store.object_path(victim["sha256"])
    obj.write_bytes(b"betA")
    with pytest.raises(SnapshotCorrupted) as caught:
        store.verify(manifest)
    message = caught.value.message
    assert str(obj) in message and "(notebook/b.txt)" in message
    assert f"expected sha256 {victim['sha256']}" in message and "\n" not in message
    import hashlib
    assert f"found {hashlib.sha256(b'betA').hexdigest()}" in message
    with pytest.raises(SnapshotCorrupted):
        restore(store, manifest["id"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    obj.unlink()
    with pytest.raises(MinikfError, match="is missing from the store"):
        store.verify(manifest)


def test_restore_writes_private_files_and_refuses_what_it_should(tmp_path):
    store = SnapshotStore(tmp_path / "store")
    manifest = _manifest(store, {"notebook/sub/a.txt": b"alpha"})
    restore(store, manifest["id"][:9], tmp_path / "out")  # a prefix is enough
    restored = tmp_path / "out" / "notebook" / "sub" / "a.txt"
    assert restored.read_bytes() == b"alpha" and mode(restored) == 0o600
    assert mode(tmp_path / "out") == mode(tmp_path / "out" / "notebook" / "sub") == 0o700
    assert json.loads((tmp_path / "out" / "snapshot.json").read_text())["id"] == manifest["id"]
    with pytest.raises(MinikfError, match="exists and is not an empty folder"):
        restore(store, manifest["id"], tmp_path / "out")
    evil = _manifest(store, {"../escape.txt": b"x"})
    with pytest.raises(MinikfError, match="names a path outside its folder: '../escape.txt'"):
        restore(store, evil["id"], tmp_path / "evil")
    assert not (tmp_path / "escape.txt").exists()
    with pytest.raises(MinikfError, match="no snapshot 'snap-ffff'"):
        store.load("ffff")


def test_a_notebook_folder_snapshot_leaves_out_jupyter_state_and_tokens(home, tmp_path):
    alice, _ = create_profile("alice", home=home)
    work = alice.work_dir
    (work / "train.ipynb").write_text("{}")
    (work / "data.csv").write_text("1,2\n")
    for skipped in (".jupyter/runtime/kernel-1.json", ".ipynb_checkpoints/train-checkpoint.ipynb",
                    "token"):
        (work / skipped).parent.mkdir(parents=True, exist_ok=True)
        (work / skipped).write_text("secret")
    manifest = snapshot_notebook(work)
    assert manifest["owner"] == "alice"
    assert {(f["path"], f["role"]) for f in manifest["files"]} == {
        ("notebook/train.ipynb", "notebook"), ("notebook/data.csv", "data")}
    assert (alice.snapshots_dir / "manifests" / f"{manifest['id']}.json").is_file()
    assert store_for(None).list() == []  # not in the OS user's store: alice's
    create_profile("bob", home=home)
    with pytest.raises(MinikfError, match="belongs to profile alice, not bob") as caught:
        snapshot_notebook(work, user="bob")
    assert caught.value.exit_code == 3


SCENARIO = """name: tiny-train
params:
  data: ${scenario_dir}/data
  scale: 2
steps:
  - name: train
    kind: command
    args:
      argv: [python, -c, "${scenario_dir}/train.py", "${params.data}", "${workdir}", "${params.scale}"]
"""

TRAIN = """import json, shutil, sys
from pathlib import Path
data, work, scale = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
shutil.copytree(data, work / "data")
total = sum(sum(p.read_bytes()) for p in sorted((work / "data").iterdir()))
(work / "model").mkdir()
(work / "model" / "model.pt").write_text(str(total * scale))
print(json.dumps({"accuracy": (total % 97) / 97, "data_dir": str(work / "data"),
                  "model_dir": str(work / "model")}))
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A scenario whose one step reads data its parameter names and writes a model (a real
    process; the command step runs `python -c` on the script)."""
    folder = tmp_path / "scenario"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "a.bin").write_bytes(bytes(range(50)))
    (folder / "data" / "b.bin").write_bytes(b"fashion")
    (folder / "train.py").write_text(TRAIN)
    (folder / "tiny.yaml").write_text(SCENARIO.replace('-c, "${scenario_dir}/train.py"',
                                                       '"${scenario_dir}/train.py"'))
    return folder / "tiny.yaml"


def test_a_run_snapshot_restores_and_reruns_on_the_same_data(home, tiny, local, tmp_path):
    first = run_scenario(load_scenario(tiny), local, tmp_path / "run1")
    assert first.ok, first.message
    manifest = snapshot_run(str(tmp_path / "run1"))
    assert manifest["run"]["run_id"] == first.run_id and manifest["owner"] == ""
    roles = {f["path"]: f["role"] for f in manifest["files"]}
    assert roles["inputs/data/a.bin"] == "data" and roles["scenario/tiny.yaml"] == "code"
    assert roles["results/results.json"] == "results", sorted(roles)
    assert roles["files/1-train.py"] == "code", sorted(roles)
    assert manifest["inputs"] == {"data": "inputs/data"}
    assert set(manifest["data"]) == {"data_dir/a.bin", "data_dir/b.bin"}
    assert manifest["metrics"]["train"]["accuracy"] == first.steps[0].metrics["accuracy"]
    assert manifest["environment"]["packages"]["torch"].startswith("2.13.0")
    assert manifest["code"]["code_version"].startswith(("git ", "minikf "))
    assert manifest["stats"]["objects_reused"] == 2  # the data, named twice, is kept once
    with MetadataStore(default_db_path()) as lineage:
        links = lineage.get(first.run_id).snapshots
    assert [(s["snapshot_id"], s["relation"]) for s in links] == [(manifest["id"], "of")]

    shutil.rmtree(tmp_path / "run1")  # the work is gone, and the data it read
    shutil.rmtree(tiny.parent)
    restored = tmp_path / "restored"
    restore(store_for(None), manifest["id"], restored)
    plan = plan_rerun(manifest, restored)
    assert plan.params == {"data": str(restored / "inputs" / "data"), "scale": 2}
    again = run_scenario(load_scenario(plan.scenario), local, tmp_path / "run2", plan.params)
    assert again.ok, again.message
    with MetadataStore(default_db_path()) as lineage:
        comparison = compare(manifest, lineage.get(again.run_id))
    assert comparison.data_same and comparison.data_files == 2
    assert comparison.delta("accuracy") == 0


def test_snapshots_of_a_run_need_its_record_and_its_results(home, tiny, local, tmp_path):
    run = run_scenario(load_scenario(tiny), local, tmp_path / "run1")
    with pytest.raises(MinikfError, match="not a run's results dir"):
        snapshot_run(str(tmp_path))
    with pytest.raises(MinikfError, match="no run 'nosuchrun'"):
        snapshot_run("nosuchrun")
    shutil.rmtree(tmp_path / "run1")
    with pytest.raises(MinikfError, match=f"run {run.run_id}: its results dir .* is gone"):
        snapshot_run(run.run_id[:8])


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINIKF_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "minikf.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_cli_create_list_show_restore_and_run_from_snapshot(home, tiny, local, tmp_path):
    run_scenario(load_scenario(tiny), local, tmp_path / "run1")
    created = _cli(home, "snapshot", "create", str(tmp_path / "run1"), "--json")
    assert created.returncode == 0, created.stderr
    snap = json.loads(created.stdout.splitlines()[-1])["id"]
    listed = _cli(home, "snapshot", "list")
    assert snap in listed.stdout and "tiny-train on local" in listed.stdout
    shown = _cli(home, "snapshot", "show", snap, "--verify")
    assert "verified: " in shown.stdout and "inputs:  data -> inputs/data" in shown.stdout
    assert _cli(home, "snapshot", "restore", snap, str(tmp_path / "r")).returncode == 0
    rerun = _cli(home, "run", "--from-snapshot", snap, "--results", str(tmp_path / "run2"), "--json",
                 "--quiet")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    summary = json.loads(rerun.stdout.splitlines()[-1])
    assert summary["reproduced"] == 1 and summary["data_same"] == 1 and summary["delta"] == 0
    assert "data: same (2 files, identical sha256)" in rerun.stdout
    lineage = _cli(home, "runs", "show", summary["run_id"], "--json")
    assert {"snapshot_id": snap, "relation": "rerun"}.items() <= json.loads(
        lineage.stdout)["snapshots"][0].items()
    bad = _cli(home, "snapshot", "create")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert _cli(home, "run", "--from-snapshot", snap, "--param", "x=1").returncode == 2
