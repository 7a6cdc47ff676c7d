"""One all-reduce of the model's gradients, timed alone: what each training step pays for it.

python -m minikf.bench.allreduce --numel N --calls K   (one process per rank, worker_env's contract)
Rank 0 prints one JSON line: wall and CPU milliseconds per all-reduce (CPU: every thread of
the process, gloo's included), for float32 tensors of N elements, and for 1,000 elements
(what is fixed per call, whatever the size). With MINIKF_SHM_DIR set (ranks on one host, as the
local platform runs them), the shared-memory exchange the workers then use
(minikf/workload/shm_allreduce.py); else gloo's all-reduce.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist

from minikf.workload.shm_allreduce import SharedMemoryAllReduce, shared_directory


def per_call(numel: int, calls: int, reduce) -> dict:
    tensor = torch.randn(numel)
    for _ in range(5):
        reduce(tensor)
    dist.barrier()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        reduce(tensor)
    return {"wall_ms": (time.perf_counter() - wall) / calls * 1000,
            "cpu_ms": (time.process_time() - cpu) / calls * 1000}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numel", type=int, required=True)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    shared = shared_directory()
    if shared is not None:
        exchange = SharedMemoryAllReduce(dist.get_rank(), dist.get_world_size(), shared, 120.0)

        def reduce(tensor: torch.Tensor) -> None:  # as a worker sums its flat gradients
            exchange.slot(tensor.numel()).copy_(tensor)
            exchange.sum_slots(tensor)
    else:
        reduce = dist.all_reduce
    figures = {"numel": args.numel, "calls": args.calls, "world": dist.get_world_size(),
               "exchange": "shared memory" if shared else "gloo",
               "model": per_call(args.numel, args.calls, reduce),
               "small": per_call(1000, args.calls, reduce)}
    if dist.get_rank() == 0:
        print(json.dumps(figures), flush=True)
    os._exit(0)  # as the train worker: no process-group teardown


if __name__ == "__main__":
    main()
