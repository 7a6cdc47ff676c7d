"""One PyTorchJob-style training worker: reads MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK.

python -m minikf.workload.train_worker --data DIR --out DIR --epochs N --batch-size B --lr LR

How a job ends, whatever order its ranks get there in:
- each rank other than 0 tells rank 0 through the rendezvous store that it is done, then exits;
  rank 0 (which serves that store, unless torchrun's agent does) saves the model, waits for every
  other rank's word (at most MINIKF_END_TIMEOUT_S), and leaves last, so no rank ever talks to a
  store or a peer that has gone;
- the process group is never torn down: freeing it joins gloo's worker threads while holding the
  GIL, and a worker thread still freeing a finished collective's Python-owned tensor waits for the
  GIL, so under CPU load the rank deadlocked at the end of main(). Every rank leaves through
  os._exit (exit_code_of) once its files are written;
- a collective waits at most MINIKF_COLLECTIVE_TIMEOUT_S for the other ranks; a rank that gives up
  ends with one line naming itself and what it waited for, and exit code 3 (EXIT_PEER_TIMEOUT);
  a rank whose peer's connection broke (that peer exited) ends with code 4 (EXIT_PEER_LOST), so
  the launcher names the rank that failed first, not its echo.
Each rank writes its progress ("minikf: rank R: ...") to stderr, so the launcher can name what a
stuck rank last did.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from minikf.workload.contract import (
    EXIT_PEER_LOST,
    EXIT_PEER_TIMEOUT,
    SCHEDULES,
    SHARES,
    PeerLost,
    PeerTimeout,
)
from minikf.workload.model import FashionCNN, save_model
from minikf.workload.recipe import (
    Augment,
    as_batch,
    channels_last,
    epoch_order,
    make_optimizer,
    make_schedule,
    rank_share,
    step_images,
    steps_per_epoch,
)
from minikf.workload.replicas import Alone, SharedMemory, make_replicas
from minikf.workload.shm_allreduce import shared_directory


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def collective_timeout_s() -> float:
    """How long one collective (an all-reduce of a training step) waits for the other ranks."""
    return _seconds("MINIKF_COLLECTIVE_TIMEOUT_S", 300.0)


def end_timeout_s() -> float:
    """How long rank 0 waits, once it has saved the model, for the others to say they are done."""
    return _seconds("MINIKF_END_TIMEOUT_S", 60.0)


class Progress:
    """This rank's progress lines; the last one says what the rank is doing (or waiting for)."""

    def __init__(self) -> None:
        self.rank, self.doing = int(os.environ.get("RANK", "0")), "starting"

    def __call__(self, doing: str) -> None:
        self.doing = doing
        # One write per line: rank 0's epoch lines come from another thread into the same log.
        sys.stderr.write(f"minikf: rank {self.rank}: {doing}\n")
        sys.stderr.flush()


progress = Progress()

# What must outlive main(): the replicas (a DDP model's reducer holds the process group; see the
# module docstring: freeing the group can deadlock). The process ends with os._exit, never freeing it.
_held: list = []


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="the job's batch, shared out among the workers")
    parser.add_argument("--lr", type=float, default=0.002,
                        help="the learning rate (with --schedule onecycle, its peak)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schedule", choices=SCHEDULES, default="constant",
                        help="the learning rate's course: constant, or onecycle (minikf/workload/recipe.py)")
    parser.add_argument("--augment", action="store_true",
                        help="random flips and shifts of the training images (recipe.py)")
    parser.add_argument("--shares", choices=SHARES, default="speed",
                        help="ranks on one host: each step's images in proportion to each rank's "
                             "speed, or evenly (the same bits every run); replicas.py")
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
    progress.rank = rank
    progress(f"joining the process group ({world} ranks at {os.environ['MASTER_ADDR']}:"
             f"{os.environ['MASTER_PORT']})")
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                            store=_loopback_store(rank, world),
                            timeout=timedelta(seconds=collective_timeout_s()))
    if os.environ.get("MINIKF_TEST_KILL_RANK") == str(rank):
        os._exit(7)  # test hook: a worker that dies mid-job
    device = torch.device(f"cuda:{rank % torch.cuda.device_count()}" if cuda else "cpu")
    return rank, world, device


def load_train(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(data_dir / "train.npz") as npz:
        return torch.from_numpy(npz["x"]), torch.from_numpy(npz["y"])


def train_epoch(replicas: Alone, x_all, y_all, order, batch_size, augment, optimizer, schedule,
                device) -> list[list[float]]:
    """One pass over the epoch's `order` in the job's steps of `batch_size` images, this rank
    training its share of each (augmented, indexed straight out of the tensors: no per-image
    Dataset calls; recipe.py); every worker's [loss sum, correct, seen, seconds, CPU seconds
    (all its threads)], gathered on each rank (the job's figures are their sums; rank 0 also
    records each worker's own)."""
    model, rank = replicas.model, dist.get_rank()
    model.train()
    started, cpu = time.monotonic(), time.process_time()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    for step in range(steps_per_epoch(len(order), batch_size)):
        step_started = time.perf_counter()
        images = step_images(order, step, batch_size)
        idx = rank_share(images, replicas.shares(len(images)), rank)
        x, y = as_batch(augment(x_all[idx], idx)).to(device), y_all[idx].to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        # This rank's part of the step's mean loss: the ranks' gradients are summed (recipe.py).
        loss = nn.functional.cross_entropy(logits, y, reduction="sum") / len(images)
        loss.backward()
        replicas.sum_gradients(len(idx) / (time.perf_counter() - step_started))
        optimizer.step()
        schedule.step()
        loss_sum += loss.detach() * len(images)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(idx)
    totals = torch.tensor([loss_sum.item(), correct.item(), seen, time.monotonic() - started,
                           time.process_time() - cpu], dtype=torch.float64, device=device)
    gathered = [torch.zeros_like(totals) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, totals)
    return [g.tolist() for g in gathered]


def epoch_line(epoch: int, workers: list[list[float]], seconds: float) -> dict:
    """metrics.jsonl's line: the job's loss, accuracy and images/s over the epoch's wall time,
    and each worker's own (its shard's loss and accuracy, its images/s over its own time, the
    CPU seconds it used: what `minikf bench train` compares across worker counts). Ranks on one
    host share the steps by speed (replicas.py), so their image counts may differ."""
    loss_sum, correct, seen = (sum(w[i] for w in workers) for i in range(3))
    return {"epoch": epoch, "loss": loss_sum / seen, "accuracy": correct / seen,
            "images_per_s": seen / seconds, "seconds": seconds,
            "workers": [{"rank": rank, "loss": w[0] / w[2] if w[2] else 0.0,
                         "accuracy": w[1] / w[2] if w[2] else 0.0, "images": int(w[2]),
                         "images_per_s": w[2] / w[3] if w[3] else 0.0, "seconds": w[3],
                         "cpu_s": w[4]}
                        for rank, w in enumerate(workers)]}


class EpochWriter:
    """Rank 0's record of each epoch (a checkpoint, a metrics.jsonl line, a stdout line), written
    by a thread of its own: the other ranks would otherwise wait at the next step's all-reduce
    while rank 0 writes. The weights are copied first, so training may go on meanwhile."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.out, self.enabled = out, enabled
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="epoch-writer", daemon=True)
        if enabled:
            (out / "checkpoints").mkdir(parents=True, exist_ok=True)
            self._thread.start()

    def write(self, net: nn.Module, line: dict) -> None:
        if not self.enabled:
            return
        if self._error is not None:
            raise self._error
        state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        self._queue.put((state, line))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            state, line = item
            try:
                torch.save(state, self.out / "checkpoints" / f"epoch-{line['epoch']}.pt")
                with open(self.out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(line) + "\n")
                sys.stdout.write(json.dumps(line) + "\n")  # one write: progress lines interleave
                sys.stdout.flush()
            except BaseException as exc:  # raised in the training thread at the next write
                self._error = exc
                return

    def close(self) -> None:
        """Every epoch written (or the writer's error raised here)."""
        if not self.enabled:
            return
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def warm_up() -> None:
    """What torch imports on first use (torch._dynamo, through the optimizer), done ahead when
    this worker is started warm (minikf/platforms/warm.py). No tensor op runs: the warm
    parent forks, and a thread pool started before a fork does not survive it."""
    torch.optim.Adam([nn.Parameter(torch.empty(1))])


def _test_stall(rank: int, where: str) -> None:
    """Test hook: MINIKF_TEST_STALL_RANK's rank stops at MINIKF_TEST_STALL_AT (`end`, the
    default, or `epoch-N`) for MINIKF_TEST_STALL_S seconds (default: for good)."""
    if os.environ.get("MINIKF_TEST_STALL_RANK") != str(rank):
        return
    if os.environ.get("MINIKF_TEST_STALL_AT", "end") != where:
        return
    seconds = _seconds("MINIKF_TEST_STALL_S", float("inf"))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def finish_job(rank: int, world: int, timeout_s: float) -> None:
    """The end-of-training handshake through the rendezvous store: every other rank says it is
    done and may exit at once; rank 0 waits for all of them, so it (the store's owner when the
    job serves its own store) is the last to leave. Raises PeerTimeout naming the missing ranks."""
    if world == 1:
        return
    store = dist.distributed_c10d._get_default_store()
    if rank != 0:
        progress("done; telling rank 0 (end-of-training handshake)")
        store.set(f"minikf/done/{rank}", "1")
        return
    others = list(range(1, world))
    names = ", ".join(map(str, others))
    progress(f"waiting for rank {names} to finish (end-of-training handshake, up to {timeout_s:g} s)")
    deadline = time.monotonic() + timeout_s
    missing = others
    while missing:
        missing = [r for r in missing if not store.check([f"minikf/done/{r}"])]
        if missing and time.monotonic() > deadline:
            names = ", ".join(map(str, missing))
            raise PeerTimeout(f"rank 0: waited {timeout_s:g} s at the end-of-training handshake "
                              f"for rank {names} (stuck or exited?)")
        if missing:
            time.sleep(0.05)
    progress("every rank is done")


def main(argv: list[str] | None = None) -> None:
    warm_up()  # (done already when started warm)
    # The framework is loaded: what follows is this worker's own set-up. `minikf bench journey`
    # splits the train step's time at this line (PyTorch's start-up before, the job's after).
    ready = time.time()
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rank, world, device = init_distributed()
    progress(f"joined the process group ({world} ranks; a collective waits up to "
             f"{collective_timeout_s():g} s for the others)")
    x_all, y_all = load_train(args.data)
    augment = Augment(len(y_all), args.seed, enabled=args.augment)
    net = channels_last(FashionCNN().to(device))
    replicas = make_replicas(net, rank, world, device, shared_directory(), collective_timeout_s(),
                             doing=lambda: progress.doing, by_speed=args.shares == "speed")
    _held.append(replicas)
    if isinstance(replicas, SharedMemory):
        how = "in proportion to its speed" if replicas.by_speed else "evenly"
        progress(f"summing gradients through shared memory ({shared_directory()}), each rank "
                 f"taking a share of every step {how}")
    optimizer = make_optimizer(net.parameters(), args.lr)
    schedule = make_schedule(args.schedule, optimizer, args.lr,
                             args.epochs * steps_per_epoch(len(y_all), args.batch_size))
    writer = EpochWriter(args.out, enabled=rank == 0)
    for epoch in range(1, args.epochs + 1):
        _test_stall(rank, f"epoch-{epoch}")
        order = epoch_order(len(y_all), epoch, args.seed)
        progress(f"epoch {epoch}/{args.epochs} (an all-reduce with the other ranks every step)")
        augment.set_epoch(epoch)
        started = time.monotonic()
        workers = train_epoch(replicas, x_all, y_all, order, args.batch_size, augment, optimizer,
                              schedule, device)
        writer.write(net, epoch_line(epoch, workers, time.monotonic() - started))
    writer.close()
    if rank == 0:
        progress("saving the model")
        save_model(net.cpu(), args.out / "model")
        if args.export_onnx:
            export_for_serving(net, args.out / "model")
        progress("saved the model")
    _test_stall(rank, "end")
    finish_job(rank, world, end_timeout_s())
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


def _is_timeout(exc: BaseException) -> bool:
    """A collective or store wait that ran out of time (gloo raises a plain RuntimeError)."""
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("timed out" in text or "timeout" in text)


def _is_peer_lost(exc: BaseException) -> bool:
    """gloo's words when the other end of a pair went away (that rank exited or was killed)."""
    text = str(exc).lower()
    return any(words in text for words in ("connection reset by peer", "connection closed by peer",
                                           "broken pipe"))


def exit_code_of(fn, *args) -> int:
    """Run fn (this worker's main, or a caller's that runs it) and turn its outcome into the
    process's exit code, a failure into a traceback and one last line naming this rank and what
    it was doing or waiting for. The caller then ends with os._exit(code): see the module
    docstring for why nothing of torch may be torn down."""
    try:
        code = fn(*args)
        return code if isinstance(code, int) else 0
    except SystemExit as exc:  # as the interpreter would treat it
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr, flush=True)
        return 1
    except PeerTimeout as exc:
        print(f"minikf: {exc}", file=sys.stderr, flush=True)
        return EXIT_PEER_TIMEOUT
    except PeerLost as exc:
        print(f"minikf: {exc}", file=sys.stderr, flush=True)
        return EXIT_PEER_LOST
    except BaseException as exc:
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if _is_timeout(exc):  # gloo's own words name the wait: "Timed out waiting 3000ms for recv"
            waited = (f"waited {collective_timeout_s():g} s" if "timed out waiting" in first.lower()
                      else f"timed out ({first})")
            print(f"minikf: rank {progress.rank}: {waited} for the other ranks (stuck or exited?) "
                  f"in: {progress.doing}", file=sys.stderr, flush=True)
            return EXIT_PEER_TIMEOUT
        if _is_peer_lost(exc):
            print(f"minikf: rank {progress.rank}: lost another rank (it exited?) in: {progress.doing}",
                  file=sys.stderr, flush=True)
            return EXIT_PEER_LOST
        print(f"minikf: rank {progress.rank}: failed ({first}) in: {progress.doing}",
              file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    code = exit_code_of(main)
    # Every file written and closed: leave without tearing torch down (see the module docstring;
    # it also saves about 2 s the train step would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
