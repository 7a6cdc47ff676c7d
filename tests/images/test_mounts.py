"""What the docker platform and the pipeline driver mount and pass to containers (no engine
needed)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from minikf.images import mounts as dp


def test_relative_segments_and_symlinks_become_real_paths(tmp_path):
    (tmp_path / "data" / "sample").mkdir(parents=True)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "scenarios")
    real = os.path.realpath(tmp_path / "data" / "sample")
    assert dp.resolve_paths(f"{tmp_path}/scenarios/../data/sample") == real
    assert dp.resolve_paths(f"--data={tmp_path}/link/../data/sample") == f"--data={real}"
    assert dp.resolve_paths(f"{tmp_path}/link/../data/sample,https://m/x") == f"{real},https://m/x"
    assert dp.resolve_paths("/no/such/path") == "/no/such/path"
    assert dp.resolve_paths("python3") == "python3"


def test_pipeline_arguments_get_real_paths(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "s").mkdir()
    argv = ["python3", "-m", "x", "--arguments", json.dumps({"mirrors": f"{tmp_path}/s/../d", "n": 3})]
    out = dp.resolve_json_arguments(argv)
    assert json.loads(out[-1]) == {"mirrors": os.path.realpath(tmp_path / "d"), "n": 3}
    assert out[:-1] == argv[:-1]


def test_a_run_work_dir_is_mounted_whole_and_nested_paths_once(tmp_path):
    work = Path(tempfile.mkdtemp(prefix="minikf-abc123-"))
    try:
        (work / "preprocess" / "data").mkdir(parents=True)
        (work / "train").mkdir()
        other = tmp_path / "mirror"
        other.mkdir()
        paths = dp.host_paths(["python3", "--data", str(work / "preprocess" / "data"),
                                "--out", str(work / "train" / "new-file"), f"--m={other}"])
        mounts = dp.mounts_for(paths, read_only=True)
        targets = sorted(m["Target"] for m in mounts)
        assert targets == sorted([os.path.realpath(work), os.path.realpath(other)])
        assert all(m["Source"] == m["Target"] and m["ReadOnly"] for m in mounts)
    finally:
        for path in sorted(work.rglob("*"), reverse=True):
            path.rmdir()
        work.rmdir()


def test_a_users_paths_mount_their_own_dir_and_never_the_run_dir_around_it(tmp_path):
    work = Path(tempfile.mkdtemp(prefix="minikf-test-"))
    try:
        alice = work / "home" / "profiles" / "alice"
        (alice / "work").mkdir(parents=True)
        (work / "home" / "profiles" / "bob").mkdir()
        (work / "data").mkdir()
        paths = [str(alice / "work"), str(alice / "jupyter"), str(work / "data"), str(tmp_path)]
        mounts = dp.mounts_for(paths, confine=alice)
        assert sorted(m["Source"] for m in mounts) == sorted(
            os.path.realpath(p) for p in (alice, work / "data", tmp_path))
        # without a user, the same paths mount the whole run dir (bob's dir with it)
        assert os.path.realpath(work) in {m["Source"] for m in dp.mounts_for(paths)}
    finally:
        import shutil

        shutil.rmtree(work)
