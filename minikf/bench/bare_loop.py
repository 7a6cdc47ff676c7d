"""A bare PyTorch training loop (no DDP, no harness) used as the benchmark baseline.

python -m minikf.bench.bare_loop --data DIR --epochs N --batch-size B --lr LR
Prints one JSON line: {"images_per_s": ..., "images": ..., "seconds": ...}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from minikf.workload.model import FashionCNN


def run(data_dir: Path, epochs: int, batch_size: int, lr: float, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    with np.load(Path(data_dir) / "train.npz") as npz:
        dataset = TensorDataset(torch.from_numpy(npz["x"]), torch.from_numpy(npz["y"]))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    # The same device rule as train_worker: CUDA where visible (CUDA_VISIBLE_DEVICES="" hides it).
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = FashionCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    seen = 0
    started = time.monotonic()  # only the training loop is timed
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
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
    args = parser.parse_args(argv)
    print(json.dumps(run(args.data, args.epochs, args.batch_size, args.lr)), flush=True)


if __name__ == "__main__":
    main()
