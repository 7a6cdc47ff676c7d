"""Summing gradients through shared memory, for data-parallel ranks on one host.

Why: gloo's all-reduce over loopback TCP costs 1-2 ms a call at the journey model's 207k
gradients, most of it fixed (socket wake-ups, thread hand-offs), and about 1 ms of CPU; a rank's
step on 32 images is about 8 ms, so on 2 cores a 2-worker job ran at 0.56-0.61 of twice one
worker. Ranks on one host can instead each copy their gradients into a slot of a shared-memory
region, tell the others through a FIFO, and each sum the slots: a fraction of a millisecond.

How: each rank writes its flat gradients (and what it reports beside them: how fast it has been,
see replicas.py) into its slot, and `sum_slots` sums every rank's. The launcher says the ranks
share a host by handing them one directory on a tmpfs (MINIKF_SHM_DIR; the local platform and
`minikf bench train` do); anywhere else (containers, pods) the ranks use DDP over gloo or nccl.

- Every rank sums the same slots in rank order, so every rank gets the same bits (the replicas
  must stay identical).
- One signal a call: two halves of each region are used in turn. A rank writes its (n+2)-th
  slot only after each other rank signalled its (n+1)-th call, which it does only once it has
  read the n-th; so no rank overwrites a slot another may still read.
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
    """One rank's end of the exchange: its FIFOs, and a region per vector length."""

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

    def _region(self, numel: int) -> torch.Tensor:
        """[2 halves, world slots, numel] of shared memory for vectors of `numel` floats (every
        rank maps the same file; the first to get there creates it)."""
        if numel not in self.regions:
            path = self.dir / f"vectors-{numel}"
            flat = torch.from_file(str(path), shared=True, size=2 * self.world * numel,
                                   dtype=torch.float32)
            self.regions[numel] = flat.view(2, self.world, numel)
        return self.regions[numel]

    def slot(self, numel: int) -> torch.Tensor:
        """This rank's slot for the next call with vectors of `numel` floats: write into it,
        then call sum_slots."""
        return self._region(numel)[self.calls.get(numel, 0) % 2][self.rank]

    def sum_slots(self, out: torch.Tensor, tail: int = 0) -> torch.Tensor:
        """Every rank's slot summed into `out` (1-D), in rank order, once each has written its
        own; a slot's last `tail` floats are not summed but come back as each rank wrote them,
        a [world, tail] tensor (what each rank reports beside its vector)."""
        numel = out.numel() + tail
        calls = self.calls.get(numel, 0)
        slots = self._region(numel)[calls % 2]
        for peer, fd in self.outbox.items():
            try:
                os.write(fd, b"\0")
            except BrokenPipeError:  # its reading end is closed: that rank has exited
                raise PeerLost(f"rank {self.rank}: lost rank {peer} (it exited?) in: "
                               f"{self.doing()}") from None
        self._wait_for_peers()
        if calls == 0:  # every rank has written its slot, so every rank has the file mapped
            (self.dir / f"vectors-{numel}").unlink(missing_ok=True)
        self.calls[numel] = calls + 1
        _sum(slots[:, :out.numel()], out=out)
        return slots[:, out.numel():].clone()

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


def _sum(slots: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The slots summed in rank order; for 2 ranks one kernel (add), not a reduction."""
    if len(slots) == 2:
        return torch.add(slots[0], slots[1], out=out)
    return torch.sum(slots, dim=0, out=out)


def shared_directory() -> Path | None:
    """The directory the launcher handed these ranks to share, if any."""
    value = os.environ.get(SHM_DIR_ENV, "").strip()
    return Path(value) if value else None
