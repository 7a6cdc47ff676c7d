"""The engine: outputs forward, expectations, timeouts, interrupts, cleanup, results."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from xml.etree import ElementTree as ET

import pytest

from minikf.engine.runner import run_scenario
from minikf.scenario import load_scenario

# A command that starts a grandchild in the same process group, writes its pid, then sleeps.
SLEEPER = (
    "import subprocess,sys,time,pathlib;"
    "c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(300)']);"
    "pathlib.Path(sys.argv[1]).write_text(str(c.pid));"
    "time.sleep(300)"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_outputs_pass_forward_and_expectations_hold(write_scenario, local, tmp_path):
    path = write_scenario("""name: fwd
steps:
  - name: first
    kind: command
    args: {argv: [python, -c, "print('{\\"n\\": 41}')"]}
    expect: ["n == 41"]
  - name: second
    kind: command
    args: {argv: [python, -c, "print('{\\"m\\": ${steps.first.outputs.n} + 1}'.replace(' + 1', ''))"]}
    expect: ["m == 41"]
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert result.status == "passed", result.message
    assert [s.metrics for s in result.steps] == [{"n": 41}, {"m": 41}]


def test_failed_expectation_fails_the_run(write_scenario, local, tmp_path):
    path = write_scenario("""name: exp
steps:
  - name: only
    kind: command
    args: {argv: [python, -c, "print('{\\"accuracy\\": 0.5}')"]}
    expect: ["accuracy >= 0.75"]
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert result.status == "failed"
    assert "expected accuracy >= 0.75, got accuracy = 0.5" in result.steps[0].message


def test_missing_capability_is_skipped_with_reason(write_scenario, local, tmp_path):
    path = write_scenario("""name: gpu
requires: [gpu]
steps:
  - {name: only, kind: command, args: {argv: [python, -c, "pass"]}}
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert result.status == "skipped" and "lacks gpu" in result.message
    assert result.steps[0].status == "skipped"


def test_timeout_kills_the_whole_process_group(write_scenario, local, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    path = write_scenario(f"""name: slow
steps:
  - name: hang
    kind: command
    timeout: 1.5
    args: {{argv: [python, -c, "{SLEEPER}", "{pidfile}"]}}
""")
    started = time.monotonic()
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert result.steps[0].status == "timeout"
    assert "timed out after 1.5s" in result.steps[0].message
    assert time.monotonic() - started < 20
    grandchild = int(pidfile.read_text())
    assert not alive(grandchild)


def test_workdir_is_removed(write_scenario, local, tmp_path):
    path = write_scenario("""name: wd
steps:
  - name: only
    kind: command
    args: {argv: [python, -c, "import json,os; print(json.dumps({'wd': os.getcwd()}))"]}
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    assert result.status == "passed"
    assert not os.path.exists(result.steps[0].metrics["wd"])


def test_results_json_and_junit_agree(write_scenario, local, tmp_path):
    path = write_scenario("""name: agree
steps:
  - {name: good, kind: command, args: {argv: [python, -c, "pass"]}}
  - {name: bad, kind: command, args: {argv: [python, -c, "raise SystemExit(3)"]}}
  - {name: never, kind: command, args: {argv: [python, -c, "pass"]}}
""")
    out = tmp_path / "r"
    run_scenario(load_scenario(path), local, out)
    data = json.loads((out / "results.json").read_text())
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert [s["name"] for s in data["steps"]] == list(cases) == ["good", "bad", "never"]
    assert [s["status"] for s in data["steps"]] == ["passed", "failed", "skipped"]
    assert cases["good"].find("failure") is None
    assert "exited 3" in cases["bad"].find("failure").get("message")
    assert cases["never"].find("skipped") is not None
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert data["status"] == "failed" and data["platform"] == "local"
    assert "minikf" in data["versions"]
    steps_table = (out / "report.html").read_text().split('<table class="steps">')[1]
    assert steps_table.split("</table>")[0].count("<tr>") == 4


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                         (signal.SIGHUP, 129)])
def test_a_signal_leaves_no_process_or_port(write_scenario, tmp_path, sig, code):
    pidfile = tmp_path / "grandchild.pid"
    path = write_scenario(f"""name: interrupt
steps:
  - name: web
    kind: service
    args:
      argv: [python, -m, http.server, --bind, 127.0.0.1, "${{ports.web}}"]
      port: ${{ports.web}}
  - name: port
    kind: command
    args: {{argv: [python, -c, "print('{{\\"p\\": ${{steps.web.outputs.port}}}}')"]}}
  - name: hang
    kind: command
    args: {{argv: [python, -c, "{SLEEPER}", "{pidfile}"]}}
""")
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "minikf.cli", "run", str(path), "--results", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pidfile.exists(), "the hanging step never started"
    time.sleep(0.3)
    port = json.loads((out / "logs" / "port.log").read_text().strip().splitlines()[-1])["p"]
    assert listening(port)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"interrupted by {sig.name}: everything the run "
                                            f"started was stopped")
    assert " ! hang (" in err  # the step's own line says it was cut
    assert not alive(int(pidfile.read_text()))
    assert not listening(port)
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "interrupted" and f"interrupted by {sig.name}" in data["message"]
    assert [s["status"] for s in data["steps"]] == ["passed", "passed", "interrupted"]


def test_a_platform_error_is_the_steps_message(write_scenario, tmp_path):
    """A MinikfError from a platform (e.g. docker's stale image) reaches the results as its own
    one-line message, like a StepFailed, not as a bug report with the exception's class name."""
    from minikf.platforms.local import LocalPlatform
    from minikf.runtime.errors import MinikfError

    class StaleImages(LocalPlatform):
        def launch(self, argv, env, log_path, resources):
            raise MinikfError("images are stale: run `minikf images build`")

    path = write_scenario("""name: stale
requires: [pipelines]
steps:
  - name: p
    kind: pipeline
    args: {pipeline: basics-sequential}
""")
    result = run_scenario(load_scenario(path), StaleImages(), tmp_path / "r")
    assert result.status == "failed"
    assert result.steps[0].message == "images are stale: run `minikf images build`"


def test_results_name_only_log_files_that_exist(write_scenario, local, tmp_path):
    """A step that ended before writing anything (here: predict with no test data) names no log;
    one that ran names its log, and the file is there."""
    path = write_scenario("""name: logs
steps:
  - name: ran
    kind: command
    args: {argv: [python, -c, "print('{\\"n\\": 1}')"]}
  - name: never
    kind: predict
    args: {url: "http://127.0.0.1:9", token: t, data_dir: /nonexistent-minikf}
""")
    result = run_scenario(load_scenario(path), local, tmp_path / "r")
    ran, never = result.steps
    assert never.status == "failed" and never.log is None
    assert ran.log and os.path.isfile(ran.log)
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [s["log"] for s in saved["steps"]][1] is None
