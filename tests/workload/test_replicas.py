"""Replicas on one host (minikf/workload/replicas.py), two real processes through a real process
group and shared memory: they start from rank 0's weights, sum their gradients, and share a
step's images by the speeds they report."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from minikf.runtime.ports import free_port
from minikf.workload.contract import worker_env

RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch, torch.distributed as dist
    from minikf.workload.replicas import SharedMemory

    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")
    torch.manual_seed(rank)  # different first weights on each rank, on purpose
    net = torch.nn.Linear(3, 2)
    replicas = SharedMemory(net, rank, 2, os.environ["MINIKF_SHM_DIR"], 60.0, lambda: "testing",
                            by_speed=os.environ["BY_SPEED"] == "1")
    report = {"weights": net.weight.flatten().tolist(), "shares_before": replicas.shares(64)}
    for step in range(3):
        for p in net.parameters():
            p.grad = torch.full_like(p, rank + 1.0)
        replicas.sum_gradients(300.0 if rank == 0 else 100.0)  # rank 0 three times as fast
    report["grads"] = sorted({v for p in net.parameters() for v in p.grad.flatten().tolist()})
    report["shares_after"] = replicas.shares(64)
    report["affinity"] = sorted(os.sched_getaffinity(0))
    print(json.dumps(report), flush=True)
    os._exit(0)
""")


@pytest.mark.parametrize("by_speed, shares", [(True, [48, 16]), (False, [32, 32])])
def test_two_ranks_start_alike_sum_gradients_and_share_steps_by_speed(tmp_path, by_speed, shares):
    """Rank 0 reports three times rank 1's speed: by speed it then takes 3/4 of a step; told to
    share evenly (`shares: even`), half whatever the speeds."""
    shared = tmp_path / "shm"
    shared.mkdir()
    port = free_port()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "BY_SPEED": "1" if by_speed else "0"}
    procs = [subprocess.Popen([sys.executable, "-c", RANK_SCRIPT], text=True,
                              env={**env, **worker_env(rank, 2, port, shm_dir=shared)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for rank in range(2)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    zero, one = reports
    assert zero["weights"] == one["weights"]  # rank 1 took rank 0's first weights
    assert zero["shares_before"] == one["shares_before"] == [32, 32]
    assert zero["grads"] == one["grads"] == [3.0]  # 1 + 2: summed, not averaged
    assert zero["shares_after"] == one["shares_after"] == shares
    if len(os.sched_getaffinity(0)) >= 2:  # each rank on a core of its own
        assert len(zero["affinity"]) == len(one["affinity"]) == 1
        assert zero["affinity"] != one["affinity"]
    assert not list(shared.iterdir())  # every file unlinked once both ranks had it
