"""A Jupyter server per user: 127.0.0.1 only, a fresh random token, in the user's work dir.

The token goes to the server in its environment (JUPYTER_TOKEN, never argv: `ps` shows
argv), is stored 0600 in the profile dir, and Jupyter logs its URL as `?token=...`. Jupyter's
runtime files (which hold the token) go to the profile's private dir, not ~/.local.
State (`notebook.json`: pid, port, user) lets `list` and `stop` find the server later.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import requests

from minikf.platforms.base import Platform
from minikf.profiles.quota import limited_argv
from minikf.profiles.runs import ProfilePlatform
from minikf.profiles.store import Profile, list_profiles, private_dir, write_private
from minikf.runtime.errors import MinikfError
from minikf.runtime.ports import free_port
from minikf.runtime.processes import kill_tree, stop_handle
from minikf.runtime.waiting import http_probe, wait_until

READY_TIMEOUT = 60.0


@dataclass
class NotebookServer:
    user: str
    pid: int
    port: int
    url: str
    create_time: float
    token_file: str

    def alive(self) -> bool:
        try:
            return abs(psutil.Process(self.pid).create_time() - self.create_time) < 1.0
        except psutil.Error:
            return False


def _state_file(profile: Profile) -> Path:
    return profile.dir / "notebook.json"


def token_file(profile: Profile) -> Path:
    return profile.dir / "notebook.token"


def jupyter_argv(profile: Profile, port: int) -> list[str]:
    """The Jupyter server's command line (no quota wrapper)."""
    argv = [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False", "--ServerApp.terminals_enabled=False",
            # JupyterLab's page (login first); jupyter_server's own "/" page needs no token.
            "--ServerApp.default_url=/lab",
            f"--ServerApp.root_dir={profile.work_dir}",
            # Kernels talk ZMQ over Unix sockets in the private runtime dir: no TCP ports.
            "--KernelManager.transport=ipc"]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI run as root
    return argv


def server_argv(profile: Profile, port: int) -> list[str]:
    """The Jupyter server's command line under the profile's quota (rlimits), on this host."""
    return limited_argv(profile, jupyter_argv(profile, port))


def jupyter_env(profile: Profile, token: str) -> dict[str, str]:
    """What the server needs besides the usual environment: the token, its private dirs."""
    private = private_dir(profile.dir / "jupyter")
    return {"JUPYTER_TOKEN": token,
            "JUPYTER_RUNTIME_DIR": str(private_dir(private / "runtime")),
            "JUPYTER_CONFIG_DIR": str(private_dir(private / "config")),
            "JUPYTER_DATA_DIR": str(private_dir(private / "data")),
            "IPYTHONDIR": str(private_dir(private / "ipython"))}


def server_env(profile: Profile, token: str) -> dict[str, str]:
    return {**os.environ, **jupyter_env(profile, token)}


def _stop(proc) -> None:
    """A container by its own stop; a process by its whole tree (kernels start sessions of
    their own, outside its process group)."""
    if callable(getattr(proc, "stop", None)):
        stop_handle(proc)
    else:
        kill_tree(proc.pid)


def wait_ready(url: str, token: str, proc: subprocess.Popen, log_path: Path) -> None:
    headers = {"Authorization": f"token {token}"}
    probe = http_probe(lambda: requests.get(f"{url}/api/status", headers=headers, timeout=2),
                       lambda r: r.status_code == 200)
    wait_until(probe, what=f"Jupyter server on {url}", timeout_s=READY_TIMEOUT, interval_s=0.3,
               proc=proc, detail=lambda: f"; see {log_path}")


def start_notebook(profile: Profile, port: int | None = None, resources=None,
                   platform: Platform | None = None) -> tuple[NotebookServer, str]:
    """Start the user's Jupyter server and return it and its token (to show once).

    With `resources` and `platform` (a scenario run) the server is the user's workload on that
    platform (docker: a container of the runtime image with the user's quota and only the
    user's dir), tracked and stopped with the run; without (the CLI) it runs on this host,
    detached, until `minikf notebooks stop`.
    """
    current = find_notebook(profile)
    if current is not None:
        raise MinikfError(f"a notebook server for {profile.name} is already running on "
                          f"{current.url} (pid {current.pid}); stop it with "
                          f"`minikf notebooks stop --user {profile.name}`", exit_code=2)
    port = port or free_port()
    token = secrets.token_urlsafe(32)
    write_private(token_file(profile), token + "\n")
    log_path = profile.dir / "notebook.log"
    write_private(log_path, "")
    if resources is not None:
        as_user = ProfilePlatform(platform, profile) if platform is not None else None
        proc = as_user.launch(jupyter_argv(profile, port), jupyter_env(profile, token), log_path,
                              resources) if as_user else \
            resources.spawn(server_argv(profile, port), log_path, env=server_env(profile, token),
                            cwd=profile.work_dir)
        resources.on_cleanup(lambda: (_stop(proc), _forget(profile)))
    else:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(server_argv(profile, port), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=server_env(profile, token), cwd=profile.work_dir,
                                    start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, token, proc, log_path)
    except MinikfError:  # NotReady
        _stop(proc)
        raise
    pid = getattr(proc, "host_pid", proc.pid)  # a container: its init's pid on this host
    server = NotebookServer(profile.name, pid, port, url, psutil.Process(pid).create_time(),
                            str(token_file(profile)))
    write_private(_state_file(profile), json.dumps(asdict(server)))
    return server, token


def find_notebook(profile: Profile) -> NotebookServer | None:
    """The user's running server; a stale state file (dead or reused pid) is removed."""
    path = _state_file(profile)
    if not path.is_file():
        return None
    try:
        server = NotebookServer(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        server = None
    if server is None or not server.alive():
        _forget(profile)
        return None
    return server


def list_notebooks(home: Path | None = None) -> list[NotebookServer]:
    return [s for p in list_profiles(home) if (s := find_notebook(p)) is not None]


def _forget(profile: Profile) -> None:
    _state_file(profile).unlink(missing_ok=True)
    token_file(profile).unlink(missing_ok=True)


def stop_notebook(profile: Profile) -> NotebookServer | None:
    """Stop the user's server if one runs; returns what was stopped."""
    server = find_notebook(profile)
    if server is not None:
        kill_tree(server.pid)
    _forget(profile)
    return server
