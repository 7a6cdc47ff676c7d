"""Fault injection, data and inputs: full disks, read-only dirs, bad mirrors, hostile scenario files.

Every case runs the real CLI in a subprocess and asserts what a user would see and what is left:
the exit code, one clear line (no traceback, no raw errno tuples), nothing left running, no temp
dir left, and results that say what happened. A full or read-only disk is a real filesystem (a
tmpfs mounted for the test, which needs root: skipped with that reason otherwise); mirrors are
real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.fs import fill, mounted_tmpfs
from tests.mirrors import NAMES, Mirror
from tests.paths import SAMPLE

ROOT = Path(__file__).resolve().parent.parent

TINY = """name: tiny
steps:
  - name: make
    kind: command
    timeout: 60
    args: {argv: [python, -c, "import json; print(json.dumps({'n': 1}))"]}
    expect: ["n == 1"]
"""


# --- what every case asserts -------------------------------------------------------------------

class Cli:
    """The CLI in a subprocess with a private TMPDIR (so "no temp dir left" and "nothing left
    running" are about this test only, whatever runs beside it under xdist)."""

    def __init__(self, tmp: Path) -> None:
        self.tmpdir = tmp / "tmpdir"
        self.tmpdir.mkdir()
        self.env = {**os.environ, "TMPDIR": str(self.tmpdir), "PYTHONPATH": str(ROOT),
                    "MINIKF_METADATA_DB": str(tmp / "metadata.db")}

    def __call__(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "minikf.cli", *argv], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        proc.seconds = time.monotonic() - started
        return proc

    def leftovers(self) -> list[str]:
        """Temp dirs under this test's TMPDIR, and processes started with it in their env."""
        # .ses: onnxruntime's telemetry session file, written when it is imported (not minikf's)
        found = [str(p) for p in self.tmpdir.iterdir() if p.name != ".ses"]
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if proc.environ().get("TMPDIR") == str(self.tmpdir):
                    found.append(f"pid {proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found


@pytest.fixture
def cli(tmp_path) -> Cli:
    runner = Cli(tmp_path)
    yield runner
    assert runner.leftovers() == []


def one_clear_line(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """The failure said in one line that names every fragment, and nothing raw (a traceback,
    an errno tuple) anywhere."""
    assert proc.returncode not in (0, None), proc.stderr
    assert "Traceback" not in proc.stderr and "[Errno" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if all(f in line for f in fragments)]
    assert lines, f"no one line names all of {fragments}: {proc.stderr}"
    return lines[-1]


def results_of(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def stray_temp_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if ".tmp" in p.name]


# --- full disk ---------------------------------------------------------------------------------

def test_a_full_results_disk_is_one_line_and_keeps_the_earlier_results(cli, tmp_path):
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    with mounted_tmpfs(tmp_path / "disk", "2m") as disk:
        results = disk / "results"
        first = cli("run", str(scenario), "--results", str(results), "--quiet")
        assert first.returncode == 0, first.stderr
        good = (results / "results.json").read_bytes()
        fill(disk)
        again = cli("run", str(scenario), "--results", str(results), "--quiet")
        one_clear_line(again, str(results), "no space left on device")
        assert (results / "results.json").read_bytes() == good
        assert stray_temp_files(results) == []


def test_a_disk_that_fills_during_the_run_keeps_the_earlier_results(cli, tmp_path):
    """The results dir passes the check before the steps; a step then fills the disk, so
    results.json cannot be written at the end: the earlier one stays whole."""
    with mounted_tmpfs(tmp_path / "disk", "2m") as disk:
        results = disk / "results"
        tiny = tmp_path / "tiny.yaml"
        tiny.write_text(TINY)
        assert cli("run", str(tiny), "--results", str(results), "--quiet").returncode == 0
        good = (results / "results.json").read_bytes()
        filler = disk / "filler"
        scenario = tmp_path / "filler.yaml"
        scenario.write_text(f"""name: filler
steps:
  - name: fill
    kind: command
    timeout: 60
    args:
      argv:
        - python
        - -c
        - |
          import json
          print(json.dumps({{"filled": 1}}), flush=True)
          try:
              with open({str(filler)!r}, "wb") as out:
                  while True:
                      out.write(bytes(65536)); out.flush()
          except OSError:
              pass
""")
        proc = cli("run", str(scenario), "--results", str(results), "--quiet")
        last = one_clear_line(proc, "results.json", "no space left on device")
        assert "filler: passed" in last  # what happened to the run itself is still said
        assert (results / "results.json").read_bytes() == good
        assert stray_temp_files(results) == []


@pytest.fixture(scope="module")
def big_model(tmp_path_factory) -> Path:
    """A real (untrained) model dir with its model.onnx (so evaluate runs it without importing
    torch), padded past the small disk's size."""
    from minikf.workload.fast_infer import export_onnx
    from minikf.workload.model import FashionCNN, save_model

    folder = save_model(FashionCNN(), tmp_path_factory.mktemp("model"))
    export_onnx(FashionCNN(), folder)
    (folder / "padding.bin").write_bytes(os.urandom(3 << 20))
    return folder


def test_a_full_disk_while_evaluate_publishes_the_model_fails_that_step(cli, tmp_path, big_model):
    scenario = tmp_path / "evaluate.yaml"
    scenario.write_text(f"""name: evaluate-on-a-small-disk
steps:
  - name: download
    kind: download
    args: {{mirrors: "{SAMPLE}", sample: true}}
  - name: preprocess
    kind: preprocess
    args: {{raw_dir: "${{steps.download.outputs.raw_dir}}"}}
  - name: evaluate
    kind: evaluate
    timeout: 120
    args: {{model_dir: "{big_model}", data_dir: "${{steps.preprocess.outputs.data_dir}}"}}
""")
    with mounted_tmpfs(tmp_path / "disk", "2m") as disk:
        results = disk / "results"
        proc = cli("run", str(scenario), "--results", str(results), "--quiet")
        one_clear_line(proc, "evaluate", "no space left on device")
        assert proc.returncode == 1
        step = {s["name"]: s for s in results_of(results)["steps"]}["evaluate"]
        assert step["status"] == "failed"
        assert "no space left on device" in step["message"] and "Errno" not in step["message"]
        assert not (results / "model").exists()  # no half-copied model left to be served
        assert stray_temp_files(results) == []


# --- unwritable results dirs ---------------------------------------------------------------------

def test_a_read_only_results_dir_fails_before_any_step(cli, tmp_path):
    marker = tmp_path / "ran"
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY.replace("import json", f"open({str(marker)!r}, 'w'); import json"))
    with mounted_tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        for results in (ro, ro / "results"):
            proc = cli("run", str(scenario), "--results", str(results), "--quiet")
            one_clear_line(proc, str(results), "--results")
            assert proc.returncode == 2
            assert not marker.exists()  # checked before the step ran


def test_a_results_path_under_a_file_is_one_line(cli, tmp_path):
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    (tmp_path / "a-file").write_text("not a folder")
    proc = cli("run", str(scenario), "--results", str(tmp_path / "a-file" / "results"))
    one_clear_line(proc, str(tmp_path / "a-file"), "--results")
    assert proc.returncode == 2


# --- mirrors -------------------------------------------------------------------------------------

@pytest.fixture
def mirrors():
    made: list[Mirror] = []

    def make(how: str) -> Mirror:
        made.append(Mirror(how))
        return made[-1]

    yield make
    for mirror in made:
        mirror.close()


DATA_SCENARIO = """name: data
params:
  mirrors: ""
steps:
  - name: download
    kind: download
    timeout: 120
    args: {mirrors: "${params.mirrors}", sample: true, timeout: 1}
    expect: ["files == 4"]
"""


def test_a_corrupt_first_mirror_moves_on_to_the_good_one(cli, tmp_path, mirrors):
    corrupt, good = mirrors("corrupt"), mirrors("good")
    scenario = tmp_path / "data.yaml"
    scenario.write_text(DATA_SCENARIO)
    results = tmp_path / "results"
    proc = cli("run", str(scenario), "--results", str(results), "--quiet",
               "--param", f"mirrors={corrupt.url},{good.url}")
    assert proc.returncode == 0, proc.stderr
    assert sorted(n for n, _ in good.requests) == sorted(NAMES)
    assert len(corrupt.requests) == 4  # each file tried there once, not retried there first
    step = results_of(results)["steps"][0]
    skipped = step["outputs"]["mirror_failures"]
    assert len(skipped) == 4 and all(corrupt.url in line and "md5" in line for line in skipped)


def test_every_mirror_failing_names_each_mirror_and_what_it_gave(cli, tmp_path, mirrors):
    corrupt, truncated, slow = mirrors("corrupt"), mirrors("truncated"), mirrors("slow")
    scenario = tmp_path / "data.yaml"
    scenario.write_text(DATA_SCENARIO)
    results = tmp_path / "results"
    proc = cli("run", str(scenario), "--results", str(results), "--quiet",
               "--param", f"mirrors={corrupt.url},{truncated.url},{slow.url}")
    name = "train-images-idx3-ubyte.gz"
    expected = hashlib.md5((SAMPLE / name).read_bytes()).hexdigest()
    got = hashlib.md5(corrupt.body(name)).hexdigest()
    last = one_clear_line(proc, name, corrupt.url, truncated.url, slow.url, expected, got,
                          "timed out")
    assert proc.returncode == 1
    message = results_of(results)["steps"][0]["message"]
    assert message in last and "\n" not in message
    assert not list((tmp_path / "tmpdir").glob("**/*.part"))


def test_a_truncated_mirror_resumes_from_the_next_one(cli, tmp_path, mirrors):
    truncated, good = mirrors("truncated"), mirrors("good")
    scenario = tmp_path / "data.yaml"
    scenario.write_text(DATA_SCENARIO)
    proc = cli("run", str(scenario), "--results", str(tmp_path / "results"), "--quiet",
               "--param", f"mirrors={truncated.url},{good.url}")
    assert proc.returncode == 0, proc.stderr  # every file verified by its md5
    assert len(truncated.requests) == 4
    assert any(rng for _, rng in good.requests)  # what the cut transfer kept was resumed


# --- hostile scenario files ----------------------------------------------------------------------

ALIAS_BOMB = "\n".join(
    ["a: &a [x,x,x,x,x,x,x,x,x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(7)]
    + ["name: bomb", "steps: [{name: s, kind: command, args: {argv: *h}}]", ""])


def hostile_files(folder: Path) -> dict[str, Path]:
    """A binary file, a 15 MB one, a YAML alias bomb, 100 000 nested lists."""
    files = {kind: folder / f"{kind}.yaml" for kind in ("binary", "huge", "alias-bomb", "deep")}
    files["binary"].write_bytes(bytes(range(256)) * 64)
    files["huge"].write_text("name: huge\nsteps:\n" + "  - {name: s, kind: command}\n" * 560_000)
    files["alias-bomb"].write_text(ALIAS_BOMB)
    files["deep"].write_text("name: deep\nsteps: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert files["huge"].stat().st_size > 15_000_000 and len(ALIAS_BOMB) < 350
    return files


def test_hostile_scenario_files_fail_fast_with_one_line_each(cli, tmp_path):
    """The CLI's own start-up is in these times; load_scenario alone takes < 1 s for each
    (tests/scenario/test_schema.py)."""
    files = hostile_files(tmp_path)
    validated = cli("scenarios", "validate", *map(str, files.values()), timeout=60)
    assert validated.returncode == 2 and validated.seconds < 15
    assert "Traceback" not in validated.stderr
    assert [line.split(":")[0] for line in validated.stderr.splitlines()] == list(
        map(str, files.values()))
    for path in files.values():
        proc = cli("run", str(path), "--results", str(tmp_path / "results"), timeout=60)
        one_clear_line(proc, str(path))
        assert proc.returncode == 2 and proc.seconds < 15
    assert not (tmp_path / "results").exists()


BROKEN_REFERENCES = {
    "no such step": ("${steps.nope.outputs.x}", "no earlier step 'nope'"),
    "a later step": ("${steps.b.outputs.files}", "no earlier step 'b'"),
    "no such output": ("${steps.a.outputs.nope}", "step 'a' (download) has no output 'nope' "
                       "(it has: files, bytes, raw_dir, mirror_failures)"),
    "no such param": ("${params.unknown}", "not a parameter of this scenario (it has: known, "
                      "early)"),
}


def test_validate_rejects_what_run_rejects(cli, tmp_path):
    """Each broken reference in a step's args, and a parameter that uses a step's output."""
    lines = "\n".join(f"      {case.replace(' ', '_')}: \"{ref}\""
                      for case, (ref, _) in BROKEN_REFERENCES.items())
    path = tmp_path / "refs.yaml"
    path.write_text(f"""name: refs
params: {{known: 1, early: "${{steps.a.outputs.files}}"}}
steps:
  - name: a
    kind: download
    args: {{mirrors: "{SAMPLE}", sample: true}}
  - name: b
    kind: preprocess
    args:
{lines}
""")
    expected = [f"{path}:2: params.early: ${{steps.a.outputs.files}}: parameters cannot use step "
                "outputs"]
    expected += [f"{path}:{10 + i}: steps[b].args.{case.replace(' ', '_')}: {ref}: {problem}"
                 for i, (case, (ref, problem)) in enumerate(BROKEN_REFERENCES.items())]
    validated = cli("scenarios", "validate", str(path))
    assert validated.returncode == 2
    assert validated.stderr.splitlines() == expected
    ran = cli("run", str(path), "--results", str(tmp_path / "results"))
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert all(line in ran.stderr for line in expected)
    assert not (tmp_path / "results").exists()  # rejected before anything ran


def test_a_command_that_does_not_exist_is_rejected_by_validate_and_run(cli, tmp_path):
    path = tmp_path / "cmd.yaml"
    path.write_text("name: cmd\nsteps:\n  - name: go\n    kind: command\n"
                    "    args: {argv: [minikf-no-such-program, --flag]}\n")
    expected = (f"{path}:5: steps[go].args.argv: program 'minikf-no-such-program' not found on "
                "PATH")
    validated = cli("scenarios", "validate", str(path))
    assert validated.returncode == 2 and validated.stderr.strip() == expected
    ran = cli("run", str(path), "--results", str(tmp_path / "results"))
    one_clear_line(ran, expected)


@pytest.mark.parametrize(("param", "problem"), [
    ("mirrors=[oops", "--param mirrors=[oops: not a YAML value"),
    ("nope=1", "--param nope: not a parameter of scenario data; its parameters: mirrors"),
    ("=1", "--param '=1': expected key=value"),
])
def test_a_malformed_param_is_one_line(cli, tmp_path, param, problem):
    scenario = tmp_path / "data.yaml"
    scenario.write_text(DATA_SCENARIO)
    proc = cli("run", str(scenario), "--results", str(tmp_path / "results"), "--param", param)
    one_clear_line(proc, problem)
    assert proc.returncode == 2
    assert not (tmp_path / "results").exists()
