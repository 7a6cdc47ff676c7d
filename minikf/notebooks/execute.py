"""Execute a notebook end to end with nbclient, papermill-style parameters injected.

The notebook's cell tagged `parameters` holds defaults; a cell with the given values is
inserted after it. The kernel runs in `cwd` with private Jupyter/IPython dirs under it.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError
from traitlets import Any

from minikf.platforms.base import Command
from minikf.platforms.jobs import describe_exit
from minikf.profiles.store import private_dir, write_private
from minikf.runtime.errors import MinikfError
from minikf.runtime.lifeline import with_run_id
from minikf.runtime.processes import kill_tree


def inject_parameters(nb: nbformat.NotebookNode, params: dict) -> None:
    """Insert `name = value` lines after the `parameters` cell (or first, when none)."""
    lines = "\n".join(f"{key} = {value!r}" for key, value in params.items())
    cell = nbformat.v4.new_code_cell(f"# Parameters injected by minikf\n{lines}")
    cell.metadata["tags"] = ["injected-parameters"]
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)


KernelArgv = Callable[[Command], list[str]]
"""How the kernel's command line runs: Platform.command_argv for the run (on this host, under a
profile's quota, or in a container)."""

KERNEL_ENV = ("JUPYTER_RUNTIME_DIR", "IPYTHONDIR")


def kernel_env(cwd: Path, run_id: str = "") -> dict[str, str]:
    """The kernel's environment: private Jupyter dirs, and the run's marker (lifeline.py), by
    which a reaper finds the kernel, which runs in a session of its own, if minikf is killed."""
    private = private_dir(cwd / ".jupyter")
    return {**with_run_id(None, run_id), "JUPYTER_RUNTIME_DIR": str(private_dir(private / "runtime")),
            "IPYTHONDIR": str(private_dir(private / "ipython"))}


class _PlatformSpecs(KernelSpecManager):
    """Kernel specs whose command runs where the platform says (`command_argv`)."""

    command_argv = Any()
    cwd = Any()
    paths = Any()

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        spec = super().get_kernel_spec(kernel_name)
        argv = list(spec.argv)
        if argv and argv[0].startswith("python"):  # jupyter_client resolves only a leading one
            argv[0] = sys.executable
        spec.argv = self.command_argv(Command(argv, list(KERNEL_ENV), self.cwd, list(self.paths)))
        return spec


def execute_notebook(path: Path, params: dict, cwd: Path, output: Path, timeout: float,
                     on_client=None, kernel_argv: KernelArgv | None = None,
                     paths: list[Path] = (), run_id: str = "") -> nbformat.NotebookNode:
    """Run every cell; write the executed notebook to `output` (0600) even when a cell fails.

    `kernel_argv` makes the kernel's command line (e.g. under a profile's quota, or a container
    that reaches `cwd` and `paths`); the connection file and sockets are in `cwd`."""
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, nbformat.ValidationError, ValueError) as exc:
        raise MinikfError(f"{path}: cannot read the notebook: {exc}") from None
    inject_parameters(nb, params)
    client = NotebookClient(nb, timeout=int(timeout), kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    # ZMQ over Unix sockets in a private dir: the kernel opens no TCP port at all.
    client.km = client.create_kernel_manager()
    if kernel_argv is not None:
        client.km.kernel_spec_manager = _PlatformSpecs(command_argv=kernel_argv, cwd=cwd,
                                                       paths=list(paths))
    client.km.transport = "ipc"
    client.km.ip = str(private_dir(cwd / ".jupyter" / "ipc") / "kernel")
    runtime = private_dir(cwd / ".jupyter" / "runtime")  # where a kernel in a container sees it
    client.km.connection_file = str(runtime / f"kernel-{uuid.uuid4().hex[:8]}.json")
    started: dict = {}  # the kernel's process, kept: nbclient's cleanup drops it before we look

    def keep_process(**_) -> None:
        started["process"] = getattr(client.km.provisioner, "process", None)

    client.on_notebook_start = keep_process
    if on_client is not None:
        on_client(client)  # lets the caller shut the kernel down on timeout or Ctrl-C
    try:
        client.execute(cwd=str(cwd), env=kernel_env(cwd, run_id))
    except CellExecutionError as exc:
        failed = next((i for i, c in enumerate(nb.cells) if any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        where = f"cell {failed + 1}" if failed is not None else "a cell"
        raise MinikfError(f"{path}: {where} failed: {exc.ename}: {exc.evalue}") from None
    except (DeadKernelError, RuntimeError) as exc:
        if not isinstance(exc, DeadKernelError) and "Kernel died" not in str(exc):
            raise
        process = started.get("process")
        try:  # the kernel's process may still be on its way out (a container being removed)
            code = process.wait(timeout=10) if process is not None else None
        except subprocess.TimeoutExpired:
            code = None
        how = f"exited with {describe_exit(code)}" if code is not None else "died"
        hint = " (137: killed, e.g. over its memory quota)" if code in (137, -9) else ""
        raise MinikfError(f"{path}: the kernel {how}{hint}") from None
    finally:
        write_private(output, nbformat.writes(nb))
    return nb


def stop_kernel(client: NotebookClient) -> None:
    """Kill the client's kernel (on a timeout or Ctrl-C, when nbclient's own cleanup may not
    run): it lives in a session of its own, outside the run's process groups."""
    pid = getattr(getattr(getattr(client, "km", None), "provisioner", None), "pid", None)
    if pid:
        kill_tree(pid)
