"""results.json, junit.xml and report.html are written whole or not at all, on a real full disk."""

from __future__ import annotations

import pytest

from minikf.results import RunResult, StepResult, write_all
from minikf.results.jsonfile import load_json
from minikf.runtime.errors import WriteFailed
from tests.fs import fill, mounted_tmpfs

NAMES = ("results.json", "junit.xml", "report.html")


def run(message: str) -> RunResult:
    return RunResult("r1", "s", "local", "failed", message=message,
                     steps=[StepResult("a", "command", "failed", message=message)])


def test_each_file_replaces_the_last_one_whole(tmp_path):
    write_all(run("first"), tmp_path)
    write_all(run("second"), tmp_path)
    assert load_json(tmp_path / "results.json").message == "second"
    assert "second" in (tmp_path / "junit.xml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)


def test_a_full_disk_leaves_the_earlier_results_whole(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk:
        write_all(run("good"), disk)
        before = {name: (disk / name).read_bytes() for name in NAMES}
        fill(disk)
        with pytest.raises(WriteFailed) as info:
            write_all(run("x" * 100_000), disk)
        assert info.value.message == f"cannot write {disk / 'results.json'}: no space left on device"
        assert {name: (disk / name).read_bytes() for name in NAMES} == before
        assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]
