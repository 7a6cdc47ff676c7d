"""One PyTorchJob-style training worker: reads MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK.

python -m minikf.workload.train_worker --data DIR --out DIR --epochs N --batch-size B --lr LR
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from minikf.workload.model import FashionCNN, save_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-onnx", action="store_true",
                        help="rank 0 also writes model.onnx (checked against the model) beside model.pt")
    return parser.parse_args(argv)


def _loopback_store(rank: int, world: int) -> dist.TCPStore | None:
    """With MASTER_ADDR on loopback (one host), rank 0's rendezvous store listens on loopback
    only: torch's TCPStore binds every interface unless handed a socket already bound.
    None (torch's env:// rendezvous) otherwise, e.g. across pods."""
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        return None  # under torchrun the elastic agent already serves the store on MASTER_PORT
    if not (addr == "localhost" or addr.startswith("127.")):
        return None
    listen_fd = None
    if rank == 0:
        sock = socket.socket()
        sock.bind((addr, port))
        sock.listen(128)
        listen_fd = sock.detach()  # the store owns the fd from here on
    return dist.TCPStore(addr, port, world, rank == 0, timeout=timedelta(minutes=5),
                         master_listen_fd=listen_fd)


def init_distributed() -> tuple[int, int, torch.device]:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                            store=_loopback_store(rank, world))
    if os.environ.get("MINIKF_TEST_KILL_RANK") == str(rank):
        os._exit(7)  # test hook: a worker that dies mid-job
    device = torch.device(f"cuda:{rank % torch.cuda.device_count()}" if cuda else "cpu")
    return rank, world, device


def load_train(data_dir: Path) -> TensorDataset:
    with np.load(data_dir / "train.npz") as npz:
        return TensorDataset(torch.from_numpy(npz["x"]), torch.from_numpy(npz["y"]))


def train_epoch(model, loader, optimizer, device) -> tuple[float, float, int]:
    """One pass; returns the all-reduced mean loss, accuracy and image count."""
    model.train()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, seen
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        totals += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)],
                               dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    loss_sum, correct, seen = totals.tolist()
    return loss_sum / seen, correct / seen, int(seen)


def record_epoch(out: Path, model, epoch: int, loss: float, acc: float, rate: float) -> None:
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(model.module.state_dict(), out / "checkpoints" / f"epoch-{epoch}.pt")
    line = {"epoch": epoch, "loss": loss, "accuracy": acc, "images_per_s": rate}
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line), flush=True)


def warm_up() -> None:
    """What torch imports on first use (torch._dynamo, through the optimizer), done ahead when
    this worker is started warm (minikf/platforms/warm.py). No tensor op runs: the warm
    parent forks, and a thread pool started before a fork does not survive it."""
    torch.optim.Adam([nn.Parameter(torch.empty(1))])


def main(argv: list[str] | None = None) -> None:
    warm_up()  # (done already when started warm)
    # The framework is loaded: what follows is this worker's own set-up. `minikf bench journey`
    # splits the train step's time at this line (PyTorch's start-up before, the job's after).
    ready = time.time()
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rank, world, device = init_distributed()
    dataset = load_train(args.data)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, seed=args.seed)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)
    ids = [device.index] if device.type == "cuda" else None
    model = DistributedDataParallel(FashionCNN().to(device), device_ids=ids)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        started = time.monotonic()
        loss, acc, seen = train_epoch(model, loader, optimizer, device)
        if rank == 0:
            record_epoch(args.out, model, epoch, loss, acc, seen / (time.monotonic() - started))
    if rank == 0:
        save_model(model.module.cpu(), args.out / "model")
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0 and args.export_onnx:
        export_for_serving(model.module, args.out / "model")
    if rank == 0:
        print(json.dumps({"event": "timeline", "ready_unix_s": ready, "done_unix_s": time.time()}),
              flush=True)


def export_for_serving(net, model_dir: Path) -> None:
    """model.onnx beside model.pt, here where torch is already loaded (a fraction of a second),
    so that evaluate and the model server never import torch (seconds each)."""
    try:
        from minikf.workload.fast_infer import export_onnx
    except ImportError as exc:  # an image without the serving extras: evaluate falls back to torch
        print(f"no model.onnx: {exc}", file=sys.stderr)
        return
    export_onnx(net, model_dir)


if __name__ == "__main__":
    main()
    # Finished, every file written and closed: skip the interpreter's teardown of torch (about
    # 2 s here, and the train step waits for every worker to exit).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
