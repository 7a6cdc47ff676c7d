"""Socket audit: run the journeys that open servers and walk every listening socket they open.

The isolation journey (which runs the whole Fashion-MNIST journey as a user, then serves a
model, two JupyterLab servers and the profiles API) and the notebook journey run in this
process, on local and on docker; a sampler thread records every TCP socket in LISTEN state held
by this process's children and by the processes in the run's containers (so only this run's,
even beside other xdist workers), also short-lived ones such as the training rendezvous.
While the servers are up, each listener is probed:
 - bound to loopback;
 - an HTTP request without a token is refused (401/403, or a redirect to a login page);
   the only non-HTTP listener allowed is ipykernel's output pipe (ZMQ PULL on 127.0.0.1,
   which drops any message without the kernel's random 16-byte prefix).
After the run: no token the run handed out appears in any log, result or artifact file,
no file there is readable by other users, and nothing is left listening.
Tokens are recorded by wrapping secrets.token_urlsafe (the real function still makes them).
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import psutil
import pytest
import requests

from minikf.engine.runner import run_scenario
from minikf.platforms import docker as docker_platform
from minikf.platforms.local import LocalPlatform
from minikf.runtime.sockets import listening_sockets
from minikf.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
LOOPBACK = {"127.0.0.1", "::1"}
NON_HTTP_ALLOWED = ("ipykernel_launcher",)  # its IOPub pipe, see the module docstring
TOKEN_FILES = {"token", "notebook.token"}  # where a profile's own tokens live, 0600


def _identity(proc: psutil.Process) -> tuple[int, float]:
    try:
        return proc.pid, proc.create_time()
    except psutil.Error:
        return proc.pid, 0.0


class ListenSampler(threading.Thread):
    """Records (ip, port) -> cmdline of every LISTEN socket of this process's descendants and of
    the processes in the containers of `run_ids` (host network: their sockets are the host's)
    that started after the sampler: a server another test of this worker keeps for its session
    (a session fixture) is not the run's."""

    def __init__(self, run_ids: set[str] | None = None) -> None:
        super().__init__(daemon=True)
        self.seen: dict[tuple[str, int], str] = {}
        self.stop = threading.Event()
        self.before = {_identity(p) for p in psutil.Process().children(recursive=True)}
        self.run_ids = run_ids if run_ids is not None else set()
        self._client = None

    def _container_processes(self) -> list[psutil.Process]:
        if not self.run_ids:
            return []
        if self._client is None:
            from minikf.images import engine

            self._client = engine.client()
        found = []
        for run_id in list(self.run_ids):
            for container in self._client.containers.list(
                    filters={"label": f"minikf.run={run_id}"}, ignore_removed=True):
                try:
                    root = psutil.Process(int(container.attrs["State"]["Pid"]))
                    found += [root, *root.children(recursive=True)]
                except (psutil.Error, ValueError):
                    continue
        return found

    def current(self) -> dict[tuple[str, int], str]:
        found = {}
        for proc in [*psutil.Process().children(recursive=True), *self._container_processes()]:
            try:
                if _identity(proc) in self.before:
                    continue
                conns = listening_sockets(proc)
                cmdline = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            for conn in conns:
                found[(conn.laddr.ip, conn.laddr.port)] = cmdline
        return found

    def run(self) -> None:
        while not self.stop.is_set():
            self.seen.update(self.current())
            time.sleep(0.05)


def refused_without_token(port: int) -> str | None:
    """None when a token-less request is refused; else what happened."""
    url = f"http://127.0.0.1:{port}/"
    for _ in range(4):
        try:
            resp = requests.get(url, allow_redirects=False, timeout=5)
        except requests.RequestException as exc:
            return f"no HTTP answer ({type(exc).__name__})"
        if resp.status_code in (401, 403):
            return None
        location = resp.headers.get("Location")
        if resp.is_redirect and location:
            if urlsplit(location).path.rstrip("/").endswith("/login"):
                return None  # Jupyter: the login page asks for the token
            url = urljoin(url, location)
            continue
        return f"GET {urlsplit(url).path} without token -> HTTP {resp.status_code}"
    return "too many redirects"


def probe(listeners: dict[tuple[str, int], str]) -> list[str]:
    problems = []
    for (ip, port), cmdline in sorted(listeners.items()):
        problem = refused_without_token(port)
        if problem is None:
            continue
        if problem.startswith("no HTTP answer") and any(a in cmdline for a in NON_HTTP_ALLOWED):
            continue
        problems.append(f"{ip}:{port} ({cmdline[:100]}): {problem}")
    return problems


def world_readable(root: Path) -> list[str]:
    """Files under root another user could read: o+r on the file and o+x on every dir above."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        here = Path(dirpath)
        chain = [here, *[p for p in here.parents if p.is_relative_to(root)]]
        if not all(p.stat().st_mode & stat.S_IXOTH for p in chain):
            continue
        found += [str(here / f) for f in files
                  if (here / f).is_file() and (here / f).stat().st_mode & stat.S_IROTH]
    return found


def files_with_tokens(root: Path, tokens: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if not path.is_file() or path.name in TOKEN_FILES or "runtime" in path.parts:
            continue  # the profile's own token files and Jupyter's 0600 runtime files
        data = path.read_bytes()
        hits += [f"{path} holds a token" for t in tokens if t.encode() in data]
    return hits


def audit(tmp_path: Path, monkeypatch, scenario_name: str, probe_at: str,
          params: dict | None = None, platform=None) -> dict:
    issued: list[str] = []
    real = secrets.token_urlsafe

    def recording(nbytes=None):
        token = real(nbytes)
        issued.append(token)
        return token

    monkeypatch.setattr(secrets, "token_urlsafe", recording)
    run_ids: set[str] = set()  # the runs (the journey's, a user's inside it) that made containers
    real_run_id = docker_platform._run_id

    def recording_run_id(resources) -> str:
        run_id = real_run_id(resources)
        run_ids.add(run_id)
        return run_id

    monkeypatch.setattr(docker_platform, "_run_id", recording_run_id)
    sampler = ListenSampler(run_ids)
    report: dict = {"probed": {}, "problems": []}

    def progress(name: str, result) -> None:
        if name == probe_at and result is None:  # every server of the journey is up now
            live = sampler.current()
            report["probed"] = live
            report["problems"] += probe(live)
            for path in (Path(p) for p in (params or {}).values()):
                report["problems"] += world_readable(path) + files_with_tokens(path, issued)

    results = tmp_path / "results"
    sampler.start()
    try:
        run = run_scenario(load_scenario(SCENARIOS / f"{scenario_name}.yaml"),
                           platform or LocalPlatform(), results, params=params, progress=progress)
    finally:
        sampler.stop.set()
        sampler.join(5)
    assert run.status == "passed", run.message
    assert issued, "the run handed out no token: nothing was audited"
    report["problems"] += [f"{ip}:{port} ({cmd[:100]}) listens beyond loopback"
                           for (ip, port), cmd in sampler.seen.items() if ip not in LOOPBACK]
    report["problems"] += world_readable(results) + files_with_tokens(results, issued)
    report["problems"] += [f"{ip}:{port} still listening after the run ({cmd[:100]})"
                           for (ip, port), cmd in sampler.current().items()]
    report["seen"] = sampler.seen
    return report


def _platform(name: str):
    if name == "local":
        return LocalPlatform()
    from tests.containers import docker_platform_or_skip

    return docker_platform_or_skip()


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["local", "docker"])
def test_isolation_journey_sockets(tmp_path, monkeypatch, platform):
    home = tmp_path / "home"
    report = audit(tmp_path, monkeypatch, "isolation", "access", {"home": str(home)},
                   _platform(platform))
    commands = " ".join(report["probed"].values())
    # the model server, two JupyterLab servers and the profiles API were all probed
    assert "minikf.workload.server" in commands
    assert commands.count("jupyter_server") >= 2
    assert "minikf.profiles.api" in commands
    assert len(report["seen"]) >= 4
    assert report["problems"] == []


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["local", "docker"])
def test_notebook_journey_sockets(tmp_path, monkeypatch, platform):
    report = audit(tmp_path, monkeypatch, "notebook", "predict", platform=_platform(platform))
    assert "minikf.workload.server" in " ".join(report["probed"].values())
    assert report["problems"] == []
