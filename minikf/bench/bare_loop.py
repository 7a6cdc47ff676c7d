"""A bare PyTorch training loop (no DDP, no harness) used as the benchmark baseline.

python -m minikf.bench.bare_loop --data DIR --epochs N --batch-size B --lr LR [--schedule S] [--augment]
    [--core C]
Prints one JSON line: {"images_per_s": ..., "images": ..., "seconds": ...}.

The same work as one worker of the journey's job: the same model, recipe and images per step
(minikf/workload/recipe.py), indexed straight out of the tensors, in a plain loop.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from minikf.workload.model import FashionCNN
from minikf.workload.recipe import (
    Augment,
    as_batch,
    channels_last,
    epoch_order,
    make_optimizer,
    make_schedule,
    steps_per_epoch,
)


def run(data_dir: Path, epochs: int, batch_size: int, lr: float, seed: int = 0,
        schedule: str = "constant", augment: bool = False) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    with np.load(Path(data_dir) / "train.npz") as npz:
        x_all, y_all = torch.from_numpy(npz["x"]), torch.from_numpy(npz["y"])
    # The same device rule as train_worker: CUDA where visible (CUDA_VISIBLE_DEVICES="" hides it).
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = channels_last(FashionCNN().to(device))
    optimizer = make_optimizer(model.parameters(), lr)
    sched = make_schedule(schedule, optimizer, lr, epochs * steps_per_epoch(len(y_all), batch_size))
    aug = Augment(len(y_all), seed, enabled=augment)
    model.train()
    seen = 0
    started = time.monotonic()  # only the training loop is timed
    for epoch in range(1, epochs + 1):
        order = epoch_order(len(y_all), epoch, seed)
        aug.set_epoch(epoch)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = as_batch(aug(x_all[idx], idx)).to(device), y_all[idx].to(device)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            sched.step()
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.monotonic() - started
    return {"images_per_s": seen / seconds, "images": seen, "seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--schedule", default="constant")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--core", type=int, default=None,
                        help="run on this core only (as a rank of a job on this host would)")
    args = parser.parse_args(argv)
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    print(json.dumps(run(args.data, args.epochs, args.batch_size, args.lr, schedule=args.schedule,
                         augment=args.augment)), flush=True)


if __name__ == "__main__":
    main()
