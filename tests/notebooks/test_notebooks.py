"""Notebooks: nbclient execution in a real kernel, and a real JupyterLab server per user."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import psutil
import pytest
import requests

from minikf.engine.runner import run_scenario
from minikf.notebooks.execute import execute_notebook, inject_parameters
from minikf.platforms.local import LocalPlatform
from minikf.profiles import create_profile, load_profile
from minikf.runtime.errors import MinikfError
from minikf.runtime.sockets import listening_sockets
from minikf.scenario import load_scenario


def _notebook(path: Path, *sources: str, tagged: int | None = 0) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    if tagged is not None:
        nb.cells[tagged].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)
    return path


def _kernels() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_parameters_go_after_the_parameters_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("title"), nbformat.v4.new_code_cell("x = 1")]
    nb.cells[1].metadata["tags"] = ["parameters"]
    inject_parameters(nb, {"x": 2, "name": "a'b"})
    assert nb.cells[2].source.endswith("x = 2\nname = \"a'b\"")
    plain = nbformat.v4.new_notebook()
    plain.cells = [nbformat.v4.new_code_cell("y = 1")]
    inject_parameters(plain, {"x": 3})
    assert plain.cells[0].source.endswith("x = 3")


def test_execute_runs_every_cell_with_parameters(tmp_path):
    path = _notebook(tmp_path / "nb.ipynb", "n = 1",
                     "import pathlib\npathlib.Path('out.txt').write_text(str(n * 7))")
    work, out = tmp_path / "work", tmp_path / "done.ipynb"
    work.mkdir()
    nb = execute_notebook(path, {"n": 6}, work, out, timeout=60)
    assert (work / "out.txt").read_text() == "42"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert nbformat.read(out, as_version=4).cells[1].source.endswith("n = 6")
    assert len(nb.cells) == 3
    assert _kernels() == []


def test_failing_cell_is_one_clear_error_and_the_executed_notebook_is_kept(tmp_path):
    path = _notebook(tmp_path / "bad.ipynb", "x = 1", "raise ValueError('no data here')")
    (tmp_path / "w").mkdir()
    with pytest.raises(MinikfError, match=r"bad\.ipynb: cell 3 failed: ValueError: no data here$"):
        execute_notebook(path, {}, tmp_path / "w", tmp_path / "out.ipynb", timeout=60)
    assert "no data here" in (tmp_path / "out.ipynb").read_text()
    assert _kernels() == []


def test_not_a_notebook_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.ipynb"
    bad.write_text("{not json")
    with pytest.raises(MinikfError, match=r"x\.ipynb: cannot read the notebook"):
        execute_notebook(bad, {}, tmp_path, tmp_path / "o.ipynb", timeout=10)


SLOW = """
name: slow-notebook
requires: [notebooks]
steps:
  - name: nb
    kind: notebook
    timeout: 8
    args:
      notebook: {path}
"""


def test_notebook_step_timeout_stops_its_kernel(tmp_path, write_scenario):
    path = _notebook(tmp_path / "slow.ipynb", "x = 1", "import time\ntime.sleep(120)")
    scenario = load_scenario(write_scenario(SLOW.format(path=path)))
    result = run_scenario(scenario, LocalPlatform(), tmp_path / "results")
    assert result.steps[0].status == "timeout", result.steps[0].message
    assert _kernels() == []


@pytest.mark.slow
def test_notebook_step_timeout_on_docker_leaves_no_kernel_container(tmp_path, write_scenario,
                                                                    docker_platform):
    from minikf.images import engine

    path = _notebook(tmp_path / "slow.ipynb", "x = 1", "import time\ntime.sleep(120)")
    scenario = load_scenario(write_scenario(SLOW.format(path=path)))
    result = run_scenario(scenario, docker_platform, tmp_path / "results")
    assert result.steps[0].status == "timeout", result.steps[0].message
    assert _kernels() == []
    cli = engine.client()
    assert cli.containers.list(all=True, filters={"label": f"minikf.run={result.run_id}"}) == []
    cli.close()


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minikf.cli", "notebooks", *args], capture_output=True,
                          text=True, env={**os.environ, "MINIKF_HOME": str(home)}, timeout=120, check=False)


@pytest.mark.slow
def test_cli_start_list_stop_with_token_isolation(tmp_path):
    """A real JupyterLab per user, as `minikf notebooks start` leaves it running."""
    home = tmp_path / "home"
    _, alice_profile_token = create_profile("alice", home=home)
    create_profile("bob", home=home)
    started = _cli(home, "start", "--user", "alice")
    try:
        assert started.returncode == 0, started.stderr
        alice = load_profile("alice", home)
        token = (alice.dir / "notebook.token").read_text().strip()
        assert stat.S_IMODE((alice.dir / "notebook.token").stat().st_mode) == 0o600
        url = started.stdout.split("notebook server for alice: ")[1].split("/lab")[0]
        assert url.startswith("http://127.0.0.1:")
        pid = int(started.stdout.split("(pid ")[1].split(")")[0])
        server = psutil.Process(pid)
        assert token not in " ".join(server.cmdline())  # not in `ps`
        assert {c.laddr.ip for c in listening_sockets(server)} == {"127.0.0.1"}

        for path in ("/api/contents", "/api/kernels", "/api/status"):
            assert requests.get(url + path, timeout=10).status_code == 403
            for other in (alice_profile_token, "wrong"):
                assert requests.get(url + path, headers={"Authorization": f"token {other}"},
                                    timeout=10).status_code == 403
            assert requests.get(url + path, headers={"Authorization": f"token {token}"},
                                timeout=10).status_code == 200
        lab = requests.get(url + "/lab", allow_redirects=False, timeout=10)
        assert lab.status_code == 302 and "/login" in lab.headers["Location"]

        listed = _cli(home, "list")
        assert "alice" in listed.stdout and url in listed.stdout and token not in listed.stdout
        twice = _cli(home, "start", "--user", "alice")
        assert twice.returncode == 2 and "already running" in twice.stderr
        assert token not in (alice.dir / "notebook.log").read_text()
    finally:
        stopped = _cli(home, "stop", "--user", "alice")
    assert stopped.returncode == 0 and "stopped alice's server" in stopped.stdout
    try:
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # gone, not yet reaped
    except psutil.NoSuchProcess:
        pass
    assert not (load_profile("alice", home).dir / "notebook.token").exists()
    assert "no notebook servers running" in _cli(home, "list").stdout


def test_stale_state_of_a_dead_server_is_forgotten(tmp_path):
    from minikf.notebooks.server import find_notebook, list_notebooks

    profile, _ = create_profile("alice", home=tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (profile.dir / "notebook.json").write_text(
        f'{{"user": "alice", "pid": {dead.pid}, "port": 1, "url": "http://127.0.0.1:1", '
        f'"create_time": 1.0, "token_file": "x"}}')
    assert find_notebook(profile) is None
    assert not (profile.dir / "notebook.json").exists()
    assert list_notebooks(tmp_path) == []


def test_start_for_unknown_user_is_a_clear_error(tmp_path):
    result = _cli(tmp_path, "start", "--user", "nobody")
    assert result.returncode == 2 and "no profile 'nobody'" in result.stderr
    assert "Traceback" not in result.stderr


AS_USER = """
name: nb-as-user
requires: [notebooks]
steps:
  - name: nb
    kind: notebook
    timeout: 120
    args:
      notebook: {path}
"""


def test_a_notebook_run_as_a_user_runs_under_their_quota(tmp_path, write_scenario):
    from minikf.profiles import Quota
    from minikf.profiles.runs import run_as

    path = _notebook(tmp_path / "q.ipynb", "out_dir = 'out'",
                     "import json, os, pathlib, resource\n"
                     "pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
                     "(pathlib.Path(out_dir) / 'metrics.json').write_text(json.dumps({\n"
                     "    'cpus': len(os.sched_getaffinity(0)),\n"
                     "    'memory_mb': resource.getrlimit(resource.RLIMIT_AS)[0] // 2**20}))")
    profile, _ = create_profile("alice", Quota(cpus=1, memory_mb=3000), home=tmp_path / "home")
    result, _ = run_as(profile, load_scenario(write_scenario(AS_USER.format(path=path))),
                       LocalPlatform(), run_scenario)
    assert result.ok, result.message
    assert result.steps[0].metrics == {"cpus": 1, "memory_mb": 3000}
    assert _kernels() == []


CGROUP_LIMITS = (
    "import json, os, pathlib, sys\n"
    "def read(*names):\n"
    "    for name in names:\n"
    "        if os.path.exists(name):\n"
    "            return open(name).read().split()\n"
    "memory = read('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes')\n"
    "cpu = read('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us')\n"
    "period = read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') or cpu[1:]\n"
    "pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
    "(pathlib.Path(out_dir) / 'metrics.json').write_text(json.dumps({\n"
    "    'in_image': int(sys.prefix == '/opt/minikf'),\n"
    "    'memory_mb': int(memory[0]) // 2**20, 'cpus': int(cpu[0]) / int(period[0])}))")


@pytest.mark.slow
def test_a_notebook_run_as_a_user_on_docker_runs_in_their_container(tmp_path, write_scenario,
                                                                    docker_platform):
    """The kernel is a container of the runtime image with the user's quota as its cgroup."""
    from minikf.images import engine
    from minikf.profiles import Quota
    from minikf.profiles.runs import run_as

    path = _notebook(tmp_path / "q.ipynb", "out_dir = 'out'", CGROUP_LIMITS)
    profile, _ = create_profile("alice", Quota(cpus=1, memory_mb=700), home=tmp_path / "home")
    result, _ = run_as(profile, load_scenario(write_scenario(AS_USER.format(path=path))),
                       docker_platform, run_scenario)
    assert result.ok, result.message
    assert result.steps[0].metrics == {"in_image": 1, "memory_mb": 700, "cpus": 1.0}
    cli = engine.client()
    assert cli.containers.list(all=True, filters={"label": f"minikf.run={result.run_id}"}) == []
    cli.close()


@pytest.mark.slow
def test_a_kernel_over_its_memory_quota_on_docker_is_stopped_and_said(tmp_path, write_scenario,
                                                                     docker_platform):
    from minikf.profiles import Quota
    from minikf.profiles.runs import run_as

    path = _notebook(tmp_path / "big.ipynb", "x = 1", "b = bytearray(1 << 30)")
    profile, _ = create_profile("alice", Quota(cpus=1, memory_mb=256), home=tmp_path / "home")
    result, _ = run_as(profile, load_scenario(write_scenario(AS_USER.format(path=path))),
                       docker_platform, run_scenario)
    assert result.status == "failed"
    assert "big.ipynb: the kernel exited with code 137 (137: killed, e.g. over its memory " \
           "quota)" in result.steps[0].message


@pytest.mark.slow
def test_a_users_notebook_server_on_docker_is_their_container(tmp_path, docker_platform):
    """JupyterLab in the runtime image: the user's quota and dir only, 127.0.0.1, a token."""
    from minikf.images import engine
    from minikf.notebooks.server import start_notebook
    from minikf.runtime.processes import RunResources

    home = tmp_path / "home"
    profile, _ = create_profile("alice", home=home)
    create_profile("bob", home=home)
    resources = RunResources(run_id=f"nbtest{os.getpid()}")
    cli = engine.client()
    try:
        server, token = start_notebook(profile, resources=resources, platform=docker_platform)
        container, = cli.containers.list(filters={"label": f"minikf.run={resources.run_id}"})
        assert container.labels["minikf.user"] == "alice"
        assert [m["Source"] for m in container.attrs["Mounts"]] == [str(profile.dir.resolve())]
        assert container.attrs["HostConfig"]["Memory"] == profile.quota.memory_mb << 20
        assert server.alive() and server.url.startswith("http://127.0.0.1:")
        listening = {c.laddr.ip for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == server.port}
        assert listening == {"127.0.0.1"}
        assert requests.get(f"{server.url}/api/contents", timeout=10).status_code == 403
        ok = requests.get(f"{server.url}/api/contents", timeout=10,
                          headers={"Authorization": f"token {token}"})
        assert ok.status_code == 200
    finally:
        assert resources.cleanup() == []
    assert cli.containers.list(all=True, filters={"label": f"minikf.run={resources.run_id}"}) == []
    assert not server.alive()
    cli.close()
