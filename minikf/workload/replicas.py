"""How the ranks of a job keep one model: who trains how many of each step's images, and how
their gradients come together before every optimizer step.

Each rank's loss is its images' summed loss over the step's image count, so the gradients are
summed, never averaged (recipe.py says why). Three kinds, chosen by `make_replicas`:

- Alone: one rank trains its model itself (no DDP: no hooks, bucket copy or one-rank
  all-reduce on every step).
- Ddp: ranks that may be on different hosts (containers, pods): DDP, its all-reduce over gloo
  or nccl summing the gradients during backward; every rank takes an even share of a step.
- SharedMemory: ranks on one host, on CPU (the launcher handed them a shared directory): no DDP;
  after backward each rank writes its gradients and its speed into shared memory and sums
  everyone's (shm_allreduce.py). Shares follow the speeds: lock-step ranks otherwise all wait
  for the slowest, and on a shared machine one core is often slower than the other for seconds
  at a time (one rank's CPU time for the same work 1.0 against 1.4 s, measured). Each rank also
  runs on a core of its own. The price: the split follows timing, so the float sums' order, and
  the last bits of the model, differ run to run; `shares: even` (the worker's --shares even)
  splits every step alike and repeats bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from minikf.workload.recipe import split
from minikf.workload.shm_allreduce import SharedMemoryAllReduce

# How much of a rank's speed estimate each step's measurement makes (the rest is its past):
# enough to follow a neighbour that arrives, not so much that one slow step moves the shares.
SPEED_WEIGHT = 0.3


class Alone:
    """One rank: its model is the network itself."""

    def __init__(self, net: nn.Module) -> None:
        self.model, self.world = net, 1

    def shares(self, images: int) -> list[int]:
        return [images]

    def sum_gradients(self, images_per_s: float) -> None:
        """Nothing to sum."""


class Ddp(Alone):
    """DDP over gloo or nccl, summing the gradients in backward; even shares."""

    def __init__(self, net: nn.Module, world: int, device: torch.device) -> None:
        ids = [device.index] if device.type == "cuda" else None
        # The gradients are the all-reduce's buckets themselves (no copy into them each step).
        self.model = DistributedDataParallel(net, device_ids=ids, gradient_as_bucket_view=True)
        self.model.register_comm_hook(None, _sum_hook)
        self.world = world

    def shares(self, images: int) -> list[int]:
        return split(images, [1.0] * self.world)


def _sum_hook(state, bucket):  # no annotations: DDP checks them, and these would be strings
    """DDP's communication hook: the bucket summed over the ranks (DDP's own divides by them)."""
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    return work.get_future().then(lambda done: done.value()[0])


class SharedMemory(Alone):
    """Ranks on one host: gradients summed through shared memory, shares by speed."""

    def __init__(self, net: nn.Module, rank: int, world: int, directory: Path, timeout_s: float,
                 doing: Callable[[], str], by_speed: bool = True) -> None:
        self.model, self.rank, self.world, self.by_speed = net, rank, world, by_speed
        for tensor in net.state_dict().values():  # every replica starts from rank 0's weights
            dist.broadcast(tensor, 0)
        pin_to_own_core(rank, world)
        self.exchange = SharedMemoryAllReduce(rank, world, directory, timeout_s, doing)
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.numel = sum(p.numel() for p in self.params)
        self.total = torch.empty(self.numel)
        self.total_grads = _views(self.total, self.params)
        self.speeds: list[float] = []  # images/s of each rank, as every rank has seen them

    def shares(self, images: int) -> list[int]:
        """By speed (once known), or evenly when told to: the same split, so the same bits, on
        every run."""
        return split(images, self.speeds if self.by_speed and self.speeds else [1.0] * self.world)

    def sum_gradients(self, images_per_s: float) -> None:
        """Every rank's gradients summed into each parameter's .grad, and every rank's speed
        (images/s of its share, waiting left out) folded into the next step's shares. The
        .grad tensors are then views of one buffer: the optimizer's zero_grad must set them to
        None (its default), not zero them in place."""
        if images_per_s <= 0 and self.speeds:  # no image of this step was this rank's
            images_per_s = self.speeds[self.rank]
        slot = self.exchange.slot(self.numel + 1)
        torch._foreach_copy_(_views(slot, self.params), [_grad(p) for p in self.params])
        slot[self.numel] = images_per_s
        seen = self.exchange.sum_slots(self.total, tail=1)[:, 0].tolist()
        self.speeds = [(1 - SPEED_WEIGHT) * old + SPEED_WEIGHT * new
                       for old, new in zip(self.speeds or seen, seen, strict=True)]
        for param, grad in zip(self.params, self.total_grads, strict=True):
            param.grad = grad


def _views(flat: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    """Each parameter's place in a flat vector, laid out as the parameter is (channels-last
    weights too), so that copying to and from it is one pass over memory."""
    views, offset = [], 0
    for p in params:
        views.append(torch.as_strided(flat, p.size(), p.stride(), flat.storage_offset() + offset))
        offset += p.numel()
    return views


def _grad(param: nn.Parameter) -> torch.Tensor:
    """The parameter's gradient; zeros where a rank's share left it without one."""
    return param.grad if param.grad is not None else torch.zeros_like(param)


def pin_to_own_core(rank: int, world: int) -> None:
    """Ranks on one host, each on a core of its own (the rank-th of the cores this process may
    use, so a quota's cores are kept): lock-step ranks that the scheduler moves between cores
    wait for each other's cold caches (5-10% of the 2-worker job's images/s, measured). Left
    alone when there are fewer cores than ranks."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) >= world:
        os.sched_setaffinity(0, {cores[rank]})


def make_replicas(net: nn.Module, rank: int, world: int, device: torch.device,
                  shared: Path | None, timeout_s: float, doing: Callable[[], str],
                  by_speed: bool = True) -> Alone:
    """The kind of replicas this job's ranks are (see the module docstring); `by_speed`: ranks
    on one host share steps by speed, else evenly."""
    if world == 1:
        return Alone(net)
    if shared is not None and device.type == "cpu":
        return SharedMemory(net, rank, world, shared, timeout_s, doing, by_speed)
    return Ddp(net, world, device)
