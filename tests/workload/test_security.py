"""Secure defaults: loopback only, a token on every served endpoint, private results."""

from __future__ import annotations

import os
import selectors
import stat
import subprocess
import sys
import time

import psutil
import requests
import torch

from minikf.engine.runner import run_scenario
from minikf.platforms.local import LocalPlatform
from minikf.profiles.api import make_server
from minikf.runtime.ports import free_port
from minikf.runtime.processes import kill_process_group
from minikf.runtime.sockets import listening_sockets
from minikf.scenario import load_scenario
from minikf.workload.model import FashionCNN, save_model


def _read_line(proc: subprocess.Popen, marker: str, timeout: float = 60) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=1):
            line = proc.stderr.readline()
            if marker in line:
                return line
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no line with {marker!r} from the server")


def test_server_module_refuses_to_start_without_a_token(tmp_path):
    """`python -m minikf.workload.server` with no token exits 2 before binding a port."""
    torch.manual_seed(0)
    model = save_model(FashionCNN().eval(), tmp_path / "model")
    env = {k: v for k, v in os.environ.items() if k != "MINIKF_SERVE_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "minikf.workload.server", "--model-dir", str(model),
                           "--port", str(free_port())], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 2
    assert "no token" in proc.stderr and "Traceback" not in proc.stderr


def test_minikf_serve_without_token_makes_one(tmp_path):
    """`minikf serve` with no --token is not an open endpoint: it makes a token and says it once."""
    torch.manual_seed(0)
    model = save_model(FashionCNN().eval(), tmp_path / "model")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MINIKF_SERVE_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "minikf.cli", "serve", "--model", str(model),
                             "--port", str(port)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env, start_new_session=True)
    try:
        token = _read_line(proc, "bearer token").rsplit(" ", 1)[1].strip()
        assert len(token) >= 32
        assert token not in " ".join(psutil.Process(proc.pid).cmdline())
        url = f"http://127.0.0.1:{port}/v2/health/ready"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not come up"
            time.sleep(0.3)
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer other"}, timeout=5).status_code == 403
        listening = {c.laddr.ip for c in listening_sockets(psutil.Process(proc.pid))}
        assert listening == {"127.0.0.1"}
    finally:
        kill_process_group(proc)


def test_profiles_api_binds_loopback_by_default(tmp_path):
    server = make_server(free_port(), home=tmp_path)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_a_new_results_dir_is_private(tmp_path, write_scenario):
    scenario = load_scenario(write_scenario(
        "name: s\nsteps:\n  - name: a\n    kind: command\n    timeout: 30\n"
        "    args: {argv: [python, -c, \"print(1)\"]}\n"))
    results = tmp_path / "new" / "results"
    run = run_scenario(scenario, LocalPlatform(), results)
    assert run.ok, run.message
    assert stat.S_IMODE(results.stat().st_mode) == 0o700
    assert (results / "results.json").is_file()
