"""Execute a notebook end to end with nbclient, papermill-style parameters injected.

The notebook's cell tagged `parameters` holds defaults; a cell with the given values is
inserted after it. The kernel runs in `cwd` with private Jupyter/IPython dirs under it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets import List, Unicode

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


def kernel_env(cwd: Path, run_id: str = "") -> dict[str, str]:
    """The kernel's environment: private Jupyter dirs, and the run's marker (lifeline.py), by
    which a reaper finds the kernel, which runs in a session of its own, if minikf is killed."""
    private = private_dir(cwd / ".jupyter")
    return {**with_run_id(None, run_id), "JUPYTER_RUNTIME_DIR": str(private_dir(private / "runtime")),
            "IPYTHONDIR": str(private_dir(private / "ipython"))}


class _PrefixedSpecs(KernelSpecManager):
    """Kernel specs whose command runs under a prefix (a profile's quota wrapper)."""

    prefix = List(Unicode())

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        spec = super().get_kernel_spec(kernel_name)
        argv = list(spec.argv)
        if argv and argv[0].startswith("python"):  # jupyter_client resolves only a leading one
            argv[0] = sys.executable
        spec.argv = [*self.prefix, *argv]
        return spec


def execute_notebook(path: Path, params: dict, cwd: Path, output: Path, timeout: float,
                     on_client=None, kernel_prefix: list[str] | None = None,
                     run_id: str = "") -> nbformat.NotebookNode:
    """Run every cell; write the executed notebook to `output` (0600) even when a cell fails.

    `kernel_prefix` goes in front of the kernel's command (e.g. a profile's quota wrapper)."""
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, nbformat.ValidationError, ValueError) as exc:
        raise MinikfError(f"{path}: cannot read the notebook: {exc}") from None
    inject_parameters(nb, params)
    client = NotebookClient(nb, timeout=int(timeout), kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    # ZMQ over Unix sockets in a private dir: the kernel opens no TCP port at all.
    client.km = client.create_kernel_manager()
    if kernel_prefix:
        client.km.kernel_spec_manager = _PrefixedSpecs(prefix=list(kernel_prefix))
    client.km.transport = "ipc"
    client.km.ip = str(private_dir(cwd / ".jupyter" / "ipc") / "kernel")
    if on_client is not None:
        on_client(client)  # lets the caller shut the kernel down on timeout or Ctrl-C
    try:
        client.execute(cwd=str(cwd), env=kernel_env(cwd, run_id))
    except CellExecutionError as exc:
        failed = next((i for i, c in enumerate(nb.cells) if any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        where = f"cell {failed + 1}" if failed is not None else "a cell"
        raise MinikfError(f"{path}: {where} failed: {exc.ename}: {exc.evalue}") from None
    finally:
        write_private(output, nbformat.writes(nb))
    return nb


def stop_kernel(client: NotebookClient) -> None:
    """Kill the client's kernel (on a timeout or Ctrl-C, when nbclient's own cleanup may not
    run): it lives in a session of its own, outside the run's process groups."""
    pid = getattr(getattr(getattr(client, "km", None), "provisioner", None), "pid", None)
    if pid:
        kill_tree(pid)
