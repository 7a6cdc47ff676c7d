"""A training job as processes: N workers launched by a platform, watched until all have exited.

What `Platform.run_training` does by default (local, docker): one rendezvous port, the
PyTorchJob env contract per rank, each worker's own log beside the step's.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from minikf.platforms.base import Platform, TrainRequest
from minikf.platforms.rank_watch import RankWatch, last_line
from minikf.runtime.errors import StepFailed
from minikf.runtime.ports import free_port
from minikf.runtime.processes import ProcessHandle, RunResources, stop_handle
from minikf.workload.contract import worker_argv, worker_env


def describe_exit(code: int) -> str:
    """`signal SIGKILL` for a negative return code, else `code N`."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"code {code}"
    return f"code {code}"


def worker_log(request: TrainRequest, rank: int) -> Path:
    return request.log_path.with_name(f"{request.log_path.stem}-worker-{rank}.log")


def launch_workers(platform: Platform, request: TrainRequest,
                   resources: RunResources) -> list[tuple[int, Path, ProcessHandle]]:
    argv = worker_argv(request.data_dir, request.out, request.epochs, request.batch_size,
                       request.lr, export_onnx=request.export_onnx)
    port = free_port()
    resources.note_port(port)
    procs = []
    for rank in range(request.workers):
        log = worker_log(request, rank)
        env = worker_env(rank, request.workers, port)
        procs.append((rank, log, platform.launch(argv, env=env, log_path=log, resources=resources)))
    return procs


def _stop_job(procs: list[tuple[int, Path, ProcessHandle]]) -> None:
    for _, _, proc in procs:  # only this job's workers, not the run's servers
        stop_handle(proc)


def watch_workers(procs: list[tuple[int, Path, ProcessHandle]]) -> None:
    """Wait for all workers. The first non-zero exit, or a worker stuck after another finished
    (rank_watch), stops the rest and fails the step with that worker's last log line."""
    watch = RankWatch({rank: log for rank, log, _ in procs})
    while True:
        codes = {rank: proc.poll() for rank, _, proc in procs}
        for rank, log, proc in procs:
            if codes[rank] not in (None, 0):
                _stop_job(procs)
                lost = getattr(proc, "lost", "")  # a warm fork whose parent died: code unknown
                how = f"was lost: {lost}" if lost else f"exited with {describe_exit(codes[rank])}"
                said = last_line(log)
                raise StepFailed(f"worker {rank} {how}{': ' + said if said else ''} (see {log})")
        if all(code == 0 for code in codes.values()):
            return
        stuck = watch.check(codes)
        if stuck:
            _stop_job(procs)
            raise StepFailed(stuck)
        time.sleep(0.05)


def run_process_job(platform: Platform, request: TrainRequest, resources: RunResources) -> None:
    request.out.mkdir(parents=True, exist_ok=True)
    watch_workers(launch_workers(platform, request, resources))
