"""Profiles: private dirs and tokens, quotas enforced for real, the runs API's 401/403."""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from minikf.engine.runner import run_scenario
from minikf.platforms.local import LocalPlatform
from minikf.profiles import (
    Quota,
    QuotaExceeded,
    check_workers,
    create_profile,
    delete_profile,
    list_profiles,
    load_profile,
    run_slot,
    user_for_token,
)
from minikf.profiles.api import make_server
from minikf.profiles.runs import ProfilePlatform, run_as
from minikf.runtime.errors import MinikfError
from minikf.runtime.ports import free_port
from minikf.runtime.processes import RunResources
from minikf.scenario import load_scenario


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_makes_private_dirs_and_token(tmp_path):
    profile, token = create_profile("alice", Quota(cpus=1), home=tmp_path)
    assert len(token) >= 32
    for directory in (tmp_path, profile.dir, profile.work_dir, profile.runs_dir):
        assert mode(directory) == 0o700, directory
    assert mode(profile.token_file) == 0o600
    assert profile.token() == token
    described = (profile.dir / "profile.yaml").read_text()
    assert token not in described and "cpus: 1" in described
    assert load_profile("alice", tmp_path).quota.cpus == 1
    assert [p.name for p in list_profiles(tmp_path)] == ["alice"]


def test_create_errors_are_clear(tmp_path):
    create_profile("alice", home=tmp_path)
    with pytest.raises(MinikfError, match="already exists"):
        create_profile("alice", home=tmp_path)
    with pytest.raises(MinikfError, match="lower-case letters"):
        create_profile("Alice/../x", home=tmp_path)
    with pytest.raises(MinikfError, match="no profile 'carol'.*known: alice"):
        load_profile("carol", tmp_path)


def test_broken_profile_file_names_file_and_field(tmp_path):
    profile, _ = create_profile("alice", home=tmp_path)
    (profile.dir / "profile.yaml").write_text("name: alice\nquota: {cpus: 0}\n")
    with pytest.raises(MinikfError, match=r"profile\.yaml: quota\.cpus: .*greater than or equal to 1"):
        load_profile("alice", tmp_path)


def test_tokens_map_to_their_user_only(tmp_path):
    _, alice = create_profile("alice", home=tmp_path)
    _, bob = create_profile("bob", home=tmp_path)
    assert user_for_token(alice, tmp_path) == "alice"
    assert user_for_token(bob, tmp_path) == "bob"
    assert user_for_token("not-a-token", tmp_path) is None
    assert user_for_token("", tmp_path) is None


def test_delete_removes_everything(tmp_path):
    profile, _ = create_profile("alice", home=tmp_path)
    (profile.work_dir / "notes.txt").write_text("x")
    delete_profile("alice", tmp_path)
    assert not profile.dir.exists()
    assert list_profiles(tmp_path) == []


def test_worker_quota_message(tmp_path):
    profile, _ = create_profile("alice", Quota(cpus=1), home=tmp_path)
    check_workers(profile, 1)
    with pytest.raises(QuotaExceeded) as err:
        check_workers(profile, 2)
    message = err.value.message
    assert "quota exceeded for profile alice" in message
    assert "2 workers" in message and "CPU quota is 1" in message and "--param workers=1" in message
    assert err.value.exit_code == 3


def test_concurrent_runs_quota(tmp_path):
    profile, _ = create_profile("alice", Quota(max_runs=1), home=tmp_path)
    with run_slot(profile, "first"):
        with pytest.raises(QuotaExceeded, match="1 run\\(s\\) already running, the quota is 1"):
            with run_slot(profile, "second"):
                pass
    with run_slot(profile, "after"):  # the slot is free again once the first run ended
        pass


def test_stale_slot_of_a_dead_run_is_ignored(tmp_path):
    profile, _ = create_profile("alice", Quota(max_runs=1), home=tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    slots = profile.dir / "slots"
    slots.mkdir(mode=0o700)
    (slots / "crashed.slot").write_text(f"{dead.pid} 12345.0\n")
    with run_slot(profile, "next"):
        assert not (slots / "crashed.slot").exists()


def _limited(profile, code: str) -> subprocess.CompletedProcess:
    from minikf.profiles.quota import limited_argv

    return subprocess.run(limited_argv(profile, [sys.executable, "-c", code]),
                          capture_output=True, text=True, timeout=60, check=False)


def test_cpu_and_memory_quota_apply_to_the_process(tmp_path):
    profile, _ = create_profile("alice", Quota(cpus=1, memory_mb=400), home=tmp_path)
    cpus = _limited(profile, "import os; print(len(os.sched_getaffinity(0)))")
    assert cpus.returncode == 0, cpus.stderr
    assert cpus.stdout.strip() == "1"
    small = _limited(profile, "b = bytearray(50 * 2**20); print('ok')")
    assert small.returncode == 0 and small.stdout.strip() == "ok", small.stderr
    big = _limited(profile, "b = bytearray(800 * 2**20)")
    assert big.returncode != 0 and "MemoryError" in big.stderr


def test_profile_platform_launches_under_quota(tmp_path):
    profile, _ = create_profile("alice", Quota(cpus=1), home=tmp_path)
    platform = ProfilePlatform(LocalPlatform(), profile)
    assert platform.describe()["profile"] == "alice"
    resources = RunResources()
    log = tmp_path / "out.log"
    try:
        proc = platform.launch([sys.executable, "-c", "import os; print(len(os.sched_getaffinity(0)))"],
                               env={}, log_path=log, resources=resources)
        assert proc.wait(timeout=60) == 0
    finally:
        resources.cleanup()
    assert log.read_text().strip() == "1"


TINY = """
name: tiny
requires: []
params: {workers: 1}
steps:
  - name: hello
    kind: command
    timeout: 30
    args:
      argv: [python, -c, "print('{\\"errors\\": 0}')"]
    expect: ["errors == 0"]
"""


def test_run_as_user_keeps_results_in_their_runs_dir(tmp_path, write_scenario):
    profile, _ = create_profile("alice", Quota(cpus=1, max_runs=1), home=tmp_path / "home")
    scenario = load_scenario(write_scenario(TINY))
    result, results = run_as(profile, scenario, LocalPlatform(), run_scenario)
    assert result.ok, result.message
    assert results.parent == profile.runs_dir and (results / "results.json").is_file()
    assert result.platform_info["profile"] == "alice"
    with pytest.raises(QuotaExceeded):
        run_as(profile, scenario, LocalPlatform(), run_scenario, params={"workers": 2})
    assert len(list(profile.runs_dir.iterdir())) == 1  # the refused run started nothing


@pytest.fixture
def api(tmp_path):
    """The real profiles API on a free loopback port, with two users and one run of alice's."""
    home = tmp_path / "home"
    alice, alice_token = create_profile("alice", home=home)
    _, bob_token = create_profile("bob", home=home)
    run = alice.runs_dir / "r1"
    (run / "model").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"run_id": "r1", "scenario": "s", "status": "passed"}))
    (run / "model" / "model.pt").write_bytes(b"weights")
    (alice.dir / "secret.txt").write_text("outside the run")
    (alice.snapshots_dir / "manifests").mkdir(parents=True)
    (alice.snapshots_dir / "manifests" / "snap-0123456789ab.json").write_text(json.dumps(
        {"id": "snap-0123456789ab", "kind": "run", "created": "t", "files": [], "run": {"run_id": "r1"}}))
    server = make_server(free_port(), home=home)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield url, alice_token, bob_token
    finally:
        server.shutdown()
        server.server_close()


PATHS = ["/api/profiles/alice/runs", "/api/profiles/alice/runs/r1",
         "/api/profiles/alice/runs/r1/artifacts/model/model.pt", "/api/profiles/alice/snapshots",
         "/api/profiles/alice/snapshots/snap-0123456789ab"]


@pytest.mark.parametrize("path", PATHS)
def test_api_refuses_no_token_and_other_users_token(api, path):
    url, alice, bob = api
    none = requests.get(url + path, timeout=10)
    assert none.status_code == 401 and none.headers["WWW-Authenticate"] == "Bearer"
    for auth, expected in ((f"Bearer {bob}", 403), ("Bearer nope", 403), (f"Basic {alice}", 403),
                           (f"Bearer {alice}", 200)):
        assert requests.get(url + path, headers={"Authorization": auth}, timeout=10).status_code == expected


def test_api_serves_the_owner_and_nothing_outside_the_run(api):
    url, alice, _ = api
    auth = {"Authorization": f"Bearer {alice}"}
    runs = requests.get(url + PATHS[0], headers=auth, timeout=10).json()
    assert [r["run"] for r in runs] == ["r1"]
    snapshots = requests.get(url + PATHS[3], headers=auth, timeout=10).json()
    assert [(s["id"], s["run"]) for s in snapshots] == [("snap-0123456789ab", "r1")]
    for missing in ("snap-ffffffffffff", "snap-0123456789ab/files", "..%2fprofile.yaml"):
        assert requests.get(f"{url}{PATHS[3]}/{missing}", headers=auth, timeout=10).status_code == 404
    assert requests.get(url + PATHS[2], headers=auth, timeout=10).content == b"weights"
    for escape in ("/api/profiles/alice/runs/r1/artifacts/../../secret.txt",
                   "/api/profiles/alice/runs/r1/artifacts/%2e%2e/%2e%2e/secret.txt",
                   "/api/profiles/alice/runs/%2e%2e/artifacts/secret.txt"):
        # http.client sends the path as written (requests would fold the dots first)
        conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=10)
        try:
            conn.request("GET", escape, headers=auth)
            resp = conn.getresponse()
            status, body = resp.status, resp.read()
        finally:
            conn.close()
        assert status == 404 and b"outside" not in body, escape
    for method in ("POST", "PUT", "DELETE"):
        assert requests.request(method, url + PATHS[0], headers=auth, timeout=10).status_code == 405
        assert requests.request(method, url + PATHS[0], timeout=10).status_code == 401
        other = {"Authorization": f"Bearer {api[2]}"}
        assert requests.request(method, url + PATHS[0], headers=other, timeout=10).status_code == 403


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minikf.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "MINIKF_HOME": str(home)}, timeout=60, check=False)


def test_cli_create_list_delete(tmp_path):
    home = tmp_path / "home"
    made = _cli(home, "profiles", "create", "alice", "--cpus", "1", "--max-runs", "1")
    assert made.returncode == 0, made.stderr
    token = load_profile("alice", home).token()
    assert token in made.stdout  # shown once, at creation
    listed = _cli(home, "profiles", "list")
    assert "alice" in listed.stdout and token not in listed.stdout
    again = _cli(home, "profiles", "create", "alice")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    bad = _cli(home, "profiles", "create", "bob", "--memory-mb", "10")
    assert bad.returncode == 2 and "--memory-mb" in bad.stderr
    gone = _cli(home, "profiles", "delete", "alice", "--yes")
    assert gone.returncode == 0 and not (home / "profiles" / "alice").exists()


def test_processes_of_a_run_started_from_a_step_stop_with_the_outer_run(tmp_path):
    """profile_run's nested run: the outer run's timeout or Ctrl-C stops what it launched."""
    profile, _ = create_profile("alice", home=tmp_path)
    outer, inner = RunResources(), RunResources()
    platform = ProfilePlatform(LocalPlatform(), profile, outer)
    try:
        proc = platform.launch([sys.executable, "-c", "import time; time.sleep(60)"], env={},
                               log_path=tmp_path / "sleep.log", resources=inner)
        assert proc.poll() is None  # running, until the outer run stops
        outer.stop_processes()
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        inner.cleanup()


ACCESS = """
name: access
steps:
  - name: access
    kind: access
    timeout: 60
    args:
      other_token: {other}
      targets:
        - name: runs
          url: {url}
          token: {owner}
          paths: [/api/profiles/alice/runs, POST /api/profiles/alice/runs]
"""


def test_access_step_passes_on_isolation_and_names_a_leak(api, write_scenario, tmp_path):
    url, alice, bob = api
    ok = run_scenario(load_scenario(write_scenario(ACCESS.format(url=url, owner=alice, other=bob))),
                      LocalPlatform(), tmp_path / "ok")
    assert ok.ok, ok.message
    assert ok.steps[0].metrics == {"checks": 2, "refused_without_token": 2, "refused_other_user": 2,
                                   "allowed_owner": 2, "errors": 0}
    assert alice not in (tmp_path / "ok" / "results.json").read_text()
    # "other" = alice herself: her own token is let through, which the step must call a failure
    leak = run_scenario(load_scenario(write_scenario(ACCESS.format(url=url, owner=alice, other=alice),
                                                     "leak.yaml")), LocalPlatform(), tmp_path / "leak")
    assert not leak.ok
    assert "2 of 2 access checks failed" in leak.message
    assert "runs GET " + url + "/api/profiles/alice/runs: without token 401, other user 200" in leak.message
