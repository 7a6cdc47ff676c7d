"""Stopping a process tree that lives outside the run's process groups (Jupyter kernels
start in sessions of their own)."""

from __future__ import annotations

import signal

import psutil


def kill_tree(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the process and its descendants, then SIGKILL whatever is left after `grace`."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=2)
