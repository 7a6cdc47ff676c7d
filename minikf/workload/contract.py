"""The Kubeflow PyTorchJob/TrainJob env contract and the worker's command line, kept free of
torch so launchers stay light.

train_worker.init_distributed reads these variables; every launcher (the platforms' training
jobs, tuning trials, the training benchmark) writes them with worker_env and runs worker_argv.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# A worker's exit codes that echo another rank's failure rather than cause one: it gave up
# waiting for the others, or gloo lost the connection to a peer that had exited. A job that
# fails names a worker with any other code first.
EXIT_PEER_TIMEOUT = 3
EXIT_PEER_LOST = 4
PEER_ECHO_CODES = frozenset({EXIT_PEER_TIMEOUT, EXIT_PEER_LOST})


class PeerTimeout(Exception):
    """A rank waited its time for another rank: the message names both and what was awaited
    (the worker exits EXIT_PEER_TIMEOUT)."""


class PeerLost(Exception):
    """Another rank went away mid-job (the worker exits EXIT_PEER_LOST)."""


# What every launcher runs, `python -m WORKER_MODULE`; warm starts key on the same name.
WORKER_MODULE = "minikf.workload.train_worker"
# The worker's --schedule values (minikf/workload/recipe.py).
SCHEDULES = ("constant", "onecycle")
# How ranks on one host share each step's images (minikf/workload/replicas.py): in proportion to
# how fast each has been, or evenly (the same split every run: the same bits every run).
SHARES = ("speed", "even")
# The model server, `python -m SERVER_MODULE --model-dir DIR --port N` (token in the env).
SERVER_MODULE = "minikf.workload.server"
# Ranks on one host sum their gradients through shared memory in this directory
# (minikf/workload/replicas.py) instead of DDP over loopback gloo; unset: DDP, gloo or nccl.
SHM_DIR_ENV = "MINIKF_SHM_DIR"
SHM_ROOT = Path("/dev/shm")


def worker_env(rank: int, world_size: int, master_port: int, master_addr: str = "127.0.0.1",
               shm_dir: Path | None = None) -> dict[str, str]:
    """The PyTorchJob variables; `shm_dir`: the ranks share this host's memory there."""
    env = {"MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
           "WORLD_SIZE": str(world_size), "RANK": str(rank)}
    return {**env, SHM_DIR_ENV: str(shm_dir)} if shm_dir else env


def worker_argv(data_dir: Path | str, out: Path | str, epochs: int, batch_size: int, lr: float,
                export_onnx: bool = False, schedule: str = "constant",
                augment: bool = False, shares: str = "speed") -> list[str]:
    """`python -m WORKER_MODULE ...` for one worker of a job; with `export_onnx` rank 0 also
    writes model.onnx, so evaluate and serve run without importing torch. `schedule` and
    `augment`: the recipe (minikf/workload/recipe.py); `shares`: one of SHARES."""
    argv = [sys.executable, "-m", WORKER_MODULE, "--data", str(data_dir), "--out", str(out),
            "--epochs", str(epochs), "--batch-size", str(batch_size), "--lr", repr(float(lr))]
    return [*argv, *recipe_flags(schedule, augment), *(["--export-onnx"] if export_onnx else []),
            *(["--shares", shares] if shares != "speed" else [])]


def recipe_flags(schedule: str = "constant", augment: bool = False) -> list[str]:
    """The worker's flags for a recipe other than its defaults (a constant rate, no augmentation)."""
    flags = [] if schedule == "constant" else ["--schedule", schedule]
    return [*flags, "--augment"] if augment else flags


def server_argv(model_dir: Path | str, port: int) -> list[str]:
    """`python -m SERVER_MODULE ...`; the token travels in MINIKF_SERVE_TOKEN, never in argv."""
    return [sys.executable, "-m", SERVER_MODULE, "--model-dir", str(model_dir), "--port", str(port)]


def make_shm_dir(root: Path = SHM_ROOT) -> Path | None:
    """A fresh directory on the host's tmpfs for one job's ranks to share (the caller removes
    it, also when the job fails); None where there is no writable /dev/shm: gloo then."""
    if not (root.is_dir() and os.access(root, os.W_OK | os.X_OK)):
        return None
    try:
        return Path(tempfile.mkdtemp(prefix="minikf-ddp-", dir=root))
    except OSError:
        return None
