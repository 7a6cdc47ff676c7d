"""`minikf ui` from a user's side: the URL with a token shown once, 401 without it, 200 with it,
one clear line for a port in use, and Ctrl-C stops it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import requests

from tests.paths import ROOT


def _start(tmp_path, *args, env=None):
    return subprocess.Popen([sys.executable, "-m", "minikf.cli", "ui", "--port", "0",
                             "--results", str(tmp_path), *args], cwd=tmp_path, text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "MINIKF_HOME": str(tmp_path),
                                 "MINIKF_METADATA_DB": str(tmp_path / "m.db"),
                                 **(env or {})})


def _first_line(proc) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "minikf ui: open" in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no URL printed (exit {proc.poll()})")


def test_the_token_is_shown_once_and_required(tmp_path):
    proc = _start(tmp_path)
    try:
        line = _first_line(proc)
        url, token = re.search(r"open (http://127\.0\.0\.1:\d+/)#token=(\S+)", line).groups()
        assert requests.get(url, timeout=10).status_code == 401
        ok = requests.get(url + "api/runs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert ok.status_code == 200 and ok.json() == []
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[1]
    assert token not in rest  # shown once
    assert proc.returncode in (0, 130)


def test_a_token_from_the_environment_is_not_printed(tmp_path):
    proc = _start(tmp_path, env={"MINIKF_UI_TOKEN": "from-env-1234"})
    try:
        line = _first_line(proc)
        assert "from-env-1234" not in line and "MINIKF_UI_TOKEN" in line
        url = re.search(r"open (http://\S+/)", line).group(1)
        assert requests.get(url, headers={"Authorization": "Bearer from-env-1234"},
                            timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_a_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "minikf.cli", "ui", "--port", str(port)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "MINIKF_HOME": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
