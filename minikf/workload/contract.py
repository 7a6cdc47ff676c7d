"""The Kubeflow PyTorchJob/TrainJob env contract, kept free of torch so launchers stay light.

train_worker.init_distributed reads these variables; every launcher (the train step, the
training benchmark, later the docker and kubernetes platforms) writes them with worker_env.
"""

from __future__ import annotations

# What every launcher runs, `python -m WORKER_MODULE`; warm starts key on the same name.
WORKER_MODULE = "minikf.workload.train_worker"


def worker_env(rank: int, world_size: int, master_port: int,
               master_addr: str = "127.0.0.1") -> dict[str, str]:
    return {"MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
            "WORLD_SIZE": str(world_size), "RANK": str(rank)}
