"""Averaging gradients through shared memory, for data-parallel ranks on one host.

Why: gloo's all-reduce over loopback TCP costs 1-2 ms a call at the journey model's 207k
gradients, most of it fixed (socket wake-ups, thread hand-offs), and about 1 ms of CPU; a rank's
step on 32 images is about 8 ms, so on 2 cores a 2-worker job ran at 0.56-0.61 of twice one
worker. Ranks on one host can instead each copy their gradients into a slot of a shared-memory
region, tell the others through a FIFO, and each sum the slots: a fraction of a millisecond.

How: DDP's communication hook (DistributedDataParallel.register_comm_hook), DDP's documented
way to replace how a bucket of gradients is reduced; DDP's bucketing, its broadcast of the first
weights and its hooks stay as they are. The launcher says the ranks share a host by handing
them one directory on a tmpfs (MINIKF_SHM_DIR; the local platform and `minikf bench train` do);
anywhere else (containers, pods) the ranks use gloo or nccl as before.

- Every rank sums the same slots in rank order, so every rank gets the same bits (DDP needs its
  replicas to stay identical).
- One signal a call: two halves of each region are used in turn. A rank writes a bucket's
  (n+2)-th gradients only after each other rank signalled its (n+1)-th call, which it does only
  once it has read the n-th; so no rank overwrites a slot another may still read.
- Rank S tells rank R through its own FIFO "S-to-R": a rank that exits closes its end, which the
  other sees at once (PeerLost, naming it); a rank that stops answering is waited for at most
  the collective timeout (PeerTimeout). Both end the worker as gloo's errors do (contract.py).
- Nothing is left behind: each file is unlinked as soon as every rank has it open (the memory
  lives as long as the mappings), and the launcher removes the directory whatever happens.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from minikf.workload.contract import SHM_DIR_ENV, PeerLost, PeerTimeout


class SharedMemoryAllReduce:
    """One rank's end of the exchange: its FIFOs, and a region per gradient bucket."""

    def __init__(self, rank: int, world: int, directory: Path, timeout_s: float,
                 doing: Callable[[], str] = lambda: "training") -> None:
        self.rank, self.world, self.dir = rank, world, Path(directory)
        self.timeout_s, self.doing = timeout_s, doing
        self.peers = [r for r in range(world) if r != rank]
        self.regions: dict[int, torch.Tensor] = {}
        self.calls: dict[int, int] = {}
        self.inbox = self._open_inbox()
        dist.barrier()  # every rank's FIFOs exist and have a reader
        self.outbox = {peer: os.open(self._fifo(rank, peer), os.O_WRONLY | os.O_NONBLOCK)
                       for peer in self.peers}
        dist.barrier()  # every FIFO has its writer: the names are no longer needed
        for peer in self.peers:
            os.unlink(self._fifo(peer, rank))

    def _fifo(self, sender: int, receiver: int) -> Path:
        return self.dir / f"{sender}-to-{receiver}"

    def _open_inbox(self) -> dict[int, int]:
        inbox = {}
        for peer in self.peers:
            path = self._fifo(peer, self.rank)
            os.mkfifo(path, 0o600)
            inbox[peer] = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        return inbox

    def _region(self, bucket: int, numel: int, dtype: torch.dtype) -> torch.Tensor:
        """[2 halves, world slots, numel] of shared memory for one bucket (every rank maps the
        same file; the first to get there creates it)."""
        if bucket not in self.regions:
            path = self.dir / f"bucket-{bucket}"
            flat = torch.from_file(str(path), shared=True, size=2 * self.world * numel, dtype=dtype)
            self.regions[bucket] = flat.view(2, self.world, numel)
        return self.regions[bucket]

    def average(self, buffer: torch.Tensor, bucket: int) -> torch.Tensor:
        """`buffer` (this rank's gradients) replaced by the mean over every rank's."""
        calls = self.calls.get(bucket, 0)
        slots = self._region(bucket, buffer.numel(), buffer.dtype)[calls % 2]
        slots[self.rank].copy_(buffer.view(-1))
        for peer, fd in self.outbox.items():
            try:
                os.write(fd, b"\0")
            except BrokenPipeError:  # its reading end is closed: that rank has exited
                raise PeerLost(f"rank {self.rank}: lost rank {peer} (it exited?) in: "
                               f"{self.doing()}") from None
        self._wait_for_peers()
        if calls == 0:  # every rank has written its slot, so every rank has the file mapped
            (self.dir / f"bucket-{bucket}").unlink(missing_ok=True)
        self.calls[bucket] = calls + 1
        return _mean(slots, out=buffer.view(-1)).view_as(buffer)

    def _wait_for_peers(self) -> None:
        """One byte from every other rank, or PeerLost / PeerTimeout naming who failed."""
        waiting = dict(self.inbox)
        deadline = time.monotonic() + self.timeout_s
        while waiting:
            left = max(0.0, deadline - time.monotonic())
            ready = select.select(list(waiting.values()), [], [], left)[0]
            if not ready:
                names = ", ".join(map(str, waiting))
                raise PeerTimeout(f"rank {self.rank}: waited {self.timeout_s:g} s for the other "
                                  f"ranks (stuck or exited?) in: {self.doing()} (rank {names})")
            for peer in [p for p, fd in waiting.items() if fd in ready]:
                if not os.read(waiting.pop(peer), 1):
                    raise PeerLost(f"rank {self.rank}: lost rank {peer} (it exited?) in: "
                                   f"{self.doing()}")


def _mean(slots: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The mean of the slots, summed in rank order; for 2 ranks one kernel (lerp at 0.5), not a
    sum and a division (each a pass over the gradients)."""
    if len(slots) == 2:
        return torch.lerp(slots[0], slots[1], 0.5, out=out)
    torch.sum(slots, dim=0, out=out)
    return out.div_(len(slots))


def allreduce_hook(state, bucket):  # no annotations: DDP checks them, and these would be strings
    """DDP's communication hook: the bucket (a dist.GradBucket) averaged over every rank,
    already done."""
    future: torch.futures.Future = torch.futures.Future()
    future.set_result(state.average(bucket.buffer(), bucket.index()))
    return future


def shared_directory() -> Path | None:
    """The directory the launcher handed these ranks to share, if any."""
    value = os.environ.get(SHM_DIR_ENV, "").strip()
    return Path(value) if value else None
