"""Atomic writes on real filesystems: a full tmpfs, a read-only one; an earlier file survives."""

import os
import shutil
import stat

import pytest

from minikf.runtime import files
from minikf.runtime.errors import MinikfError, WriteFailed
from tests.fs import fill, mounted_tmpfs


def temp_files(folder):
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_a_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    files.write_text(target, '{"new": 1}')
    assert target.read_text() == '{"new": 1}'
    assert temp_files(tmp_path) == []


def test_modes_follow_the_umask_or_stay_private(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_text(tmp_path / "public", "x")
        files.write_text(tmp_path / "private", "x", perms=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600


def test_an_error_while_writing_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("good")
    with pytest.raises(RuntimeError), files.atomic_open(target) as out:
        out.write("half of it")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "good" and temp_files(tmp_path) == []


def test_a_full_disk_is_one_line_and_the_earlier_file_stays(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk:
        target = disk / "results.json"
        files.write_text(target, "good")
        fill(disk)
        with pytest.raises(WriteFailed) as info:
            files.write_text(target, "x" * 200_000)
        assert info.value.message == f"cannot write {target}: no space left on device"
        assert target.read_text() == "good" and temp_files(disk) == []


def test_a_folder_copy_is_whole_or_not_at_all(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    (src / "model.pt").write_bytes(os.urandom(600_000))
    (src / "sub").mkdir()
    (src / "sub" / "meta.json").write_text("{}")
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk:
        published = files.copy_tree(src, disk / "model")
        assert (published / "sub" / "meta.json").read_text() == "{}"
        (src / "model.pt").write_bytes(os.urandom(900_000))  # too big beside the first copy
        with pytest.raises(WriteFailed) as info:
            files.copy_tree(src, disk / "model")
        assert info.value.message.endswith(f"to {disk / 'model'}: no space left on device")
        assert (disk / "model" / "model.pt").stat().st_size == 600_000  # the earlier copy
        assert [p.name for p in disk.iterdir()] == ["model"]


def test_a_second_copy_replaces_the_first(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    src.mkdir()
    (src / "one").write_text("1")
    files.copy_tree(src, dst)
    (src / "one").unlink()
    (src / "two").write_text("2")
    files.copy_tree(src, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert [p.name for p in dst.iterdir()] == ["two"]


def test_writable_dir_check_names_the_dir_and_the_fix(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(MinikfError) as info:
        files.check_writable_dir(tmp_path / "a-file" / "results", "results dir", "use --results")
    assert info.value.exit_code == 2
    assert info.value.message == (f"results dir {tmp_path / 'a-file' / 'results'}: not a directory; "
                                  "use --results")
    made = files.check_writable_dir(tmp_path / "new" / "results", "results dir", "fix")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700 and list(made.iterdir()) == []


@pytest.mark.parametrize("state", ["read-only", "full"])
def test_writable_dir_check_on_a_real_filesystem(tmp_path, state):
    with mounted_tmpfs(tmp_path / "disk", "1m", read_only=state == "read-only") as disk:
        if state == "full":
            fill(disk)
        for folder in (disk, disk / "results"):
            with pytest.raises(MinikfError) as info:
                files.check_writable_dir(folder, "results dir", "use --results")
            reason = "read-only file system" if state == "read-only" else "no space left on device"
            assert info.value.message == f"results dir {folder}: {reason}; use --results"
        assert temp_files(disk) == []


def test_os_errors_as_one_line(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(OSError) as info:
        missing.read_text()
    assert files.os_error_line(info.value) == f"{missing}: no such file or directory"
    why = f"[Errno 28] No space left on device: '{tmp_path / 'b'}'"
    listed = shutil.Error([(str(tmp_path / "a"), str(tmp_path / "b"), why)])
    assert files.os_error_line(listed) == f"{tmp_path / 'b'}: no space left on device"
