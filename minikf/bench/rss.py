"""Peak resident memory of benchmarked processes, from the kernel's own high-water marks.

A live process: VmHWM in /proc/PID/status (Linux). A child that has exited: ru_maxrss from
os.wait4 on that very pid, so each training worker gets its own figure, not the max over all.
"""

from __future__ import annotations

import os
import subprocess

import psutil


def vm_hwm_mb(pid: int) -> float | None:
    """Peak RSS so far of a live process in MiB; None where /proc has no such figure."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_peak_rss_mb(pid: int) -> float | None:
    """Peak RSS of a process plus that of its live descendants (e.g. server workers)."""
    total = vm_hwm_mb(pid)
    if total is None:
        return None
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        total += vm_hwm_mb(child.pid) or 0.0
    return total


def wait_with_peak_rss(proc: subprocess.Popen, timeout: float) -> tuple[int, float | None]:
    """Wait for a child like Popen.wait; also return its own peak RSS in MiB (ru_maxrss).

    Raises subprocess.TimeoutExpired like Popen.wait, leaving the child running for cleanup.
    """
    code, rss, _ = wait_with_usage(proc, timeout)
    return code, rss


def wait_with_usage(proc: subprocess.Popen, timeout: float) -> tuple[int, float | None, float]:
    """As wait_with_peak_rss, and the CPU seconds (user + system) the child used."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.05)
