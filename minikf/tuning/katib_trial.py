"""A Katib trial's container command: train with the trial's parameters, and after each epoch
print the checkpoint's test-set scores as `name=value` lines, which Katib's default StdOut
metrics collector reads (and its median stopping uses, as the local search does).

python -m minikf.tuning.katib_trial --data DIR --out DIR --epochs N --batch-size B --lr LR
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from minikf.runtime.ports import free_port
from minikf.tuning.trial import CheckpointScorer, train_argv, watch_epochs
from minikf.workload.contract import worker_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    params = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    # One worker; a free rendezvous port unless the pod says otherwise (the trainer's default,
    # 29500, may be taken on a shared host).
    env = {**worker_env(0, 1, free_port()), **os.environ}
    worker = subprocess.Popen(train_argv(args.data, args.out, params), env=env)
    for epoch, scores in watch_epochs([worker], args.out, CheckpointScorer(args.data)):
        print(f"epoch={epoch}", flush=True)
        for name, value in scores.items():
            print(f"{name}={value:.6f}", flush=True)
    return worker.returncode


if __name__ == "__main__":
    sys.exit(main())
