"""A training job as processes: N workers launched by a platform, watched until all have exited.

What `Platform.run_training` does by default (local, docker): one rendezvous port, the
PyTorchJob env contract per rank, each worker's own log beside the step's.
"""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path

from minikf.platforms.base import Platform, TrainRequest
from minikf.platforms.rank_watch import RankWatch, last_line
from minikf.runtime.errors import StepFailed
from minikf.runtime.ports import free_port
from minikf.runtime.processes import ProcessHandle, RunResources, stop_handle
from minikf.workload.contract import PEER_ECHO_CODES, worker_argv, worker_env

# How long the other workers of a failed job get to report their own exit (see _first_failure).
PEERS_REPORT_S = 2.0


def describe_exit(code: int) -> str:
    """`signal SIGKILL` for a negative return code, else `code N`."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"code {code}"
    return f"code {code}"


def how_it_ended(handle: ProcessHandle) -> str:
    """`exited with code 3`, `exited with signal SIGKILL`, or what the handle knows better: a
    warm fork whose parent died (`was lost: ...`), a container (`killed: over its memory quota
    of 512 MiB (OOMKilled)`)."""
    lost = getattr(handle, "lost", "")  # a warm fork whose parent died: code unknown
    if lost:
        return f"was lost: {lost}"
    reason = getattr(handle, "exit_reason", None)
    return reason or f"exited with {describe_exit(handle.returncode)}"


def worker_log(request: TrainRequest, rank: int) -> Path:
    return request.log_path.with_name(f"{request.log_path.stem}-worker-{rank}.log")


def launch_workers(platform: Platform, request: TrainRequest,
                   resources: RunResources) -> list[tuple[int, Path, ProcessHandle]]:
    argv = worker_argv(request.data_dir, request.out, request.epochs, request.batch_size,
                       request.lr, export_onnx=request.export_onnx, schedule=request.schedule,
                       augment=request.augment, shares=request.shares)
    port = free_port()
    resources.note_port(port)
    shared = platform.shared_memory_dir(resources) if request.workers > 1 else None
    procs = []
    for rank in range(request.workers):
        log = worker_log(request, rank)
        env = worker_env(rank, request.workers, port, shm_dir=shared)
        procs.append((rank, log, platform.launch(argv, env=env, log_path=log, resources=resources)))
    return procs


def _stop_job(procs: list[tuple[int, Path, ProcessHandle]]) -> None:
    for _, _, proc in procs:  # only this job's workers, not the run's servers
        stop_handle(proc)


def _first_failure(procs: list[tuple[int, Path, ProcessHandle]],
                   settle_s: float = PEERS_REPORT_S) -> str:
    """The message for a job one of whose workers failed, naming the cause rather than its echo:
    when one rank dies the others soon exit too (gloo loses its peer: code 3), and a warm fork's
    exit code arrives a moment late. So the others get `settle_s` to report, then a worker killed
    by a signal (or lost with its warm parent) is named first, then one that exited with a code
    of its own, then one whose code only echoes a lost peer (contract.PEER_ECHO_CODES)."""
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and any(proc.poll() is None for _, _, proc in procs):
        time.sleep(0.05)
    codes = {rank: proc.poll() for rank, _, proc in procs}  # before this job's own SIGTERMs
    _stop_job(procs)
    failed = [(rank, log, proc) for rank, log, proc in procs if codes[rank] not in (None, 0)]
    rank, log, proc = min(failed, key=lambda f: (_blame_order(f[2], codes[f[0]]), f[0]))
    how = how_it_ended(proc)
    said = last_line(log)
    return f"worker {rank} {how}{': ' + said if said else ''} (see {log})"


def _blame_order(proc: ProcessHandle, code: int) -> int:
    """0: killed or lost (the cause), 1: failed with a code of its own, 2: an echo of a lost peer."""
    if getattr(proc, "lost", "") or code < 0 or getattr(proc, "exit_reason", None):
        return 0
    return 2 if code in PEER_ECHO_CODES else 1


def watch_workers(procs: list[tuple[int, Path, ProcessHandle]]) -> None:
    """Wait for all workers. The first non-zero exit, or a worker stuck after another finished
    (rank_watch), stops the rest and fails the step with that worker's last log line."""
    watch = RankWatch({rank: log for rank, log, _ in procs})
    while True:
        codes = {rank: proc.poll() for rank, _, proc in procs}
        if any(code not in (None, 0) for code in codes.values()):
            raise StepFailed(_first_failure(procs))
        if all(code == 0 for code in codes.values()):
            return
        stuck = watch.check(codes)
        if stuck:
            _stop_job(procs)
            raise StepFailed(stuck)
        time.sleep(0.05)


def run_process_job(platform: Platform, request: TrainRequest, resources: RunResources) -> None:
    if request.workers is None:  # `auto` from a caller that did not plan
        request = replace(request, workers=platform.plan_workers(request).workers)
    request.out.mkdir(parents=True, exist_ok=True)
    watch_workers(launch_workers(platform, request, resources))
