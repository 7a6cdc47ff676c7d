"""The training recipe the journey's workers (and the benchmark's bare loop) run: how an epoch's
images are ordered, split among the ranks, augmented, and how the learning rate moves.

Why these choices, on the sample's 700 training images (and why they hold on the full set):
- one shuffled order of the images an epoch, cut into the job's batches: step k covers the same
  images whatever the rank count, each rank taking a contiguous share of the step. Each rank's
  loss is its images' summed loss over the whole step's image count, and the ranks' gradients
  are summed, so a step's gradient is that of the step's mean loss however it is shared out: the
  model a job trains does not depend on how many workers the platform chose for it, nor on how
  the step was divided (only the order of float sums differs). So shares need not be equal:
  ranks on one host share each step in proportion to how fast each has been (`split`), and a
  core slowed by a neighbour does not hold the other ranks back by the difference;
- augmentation: a random horizontal flip and a shift of up to `shift` pixels per image, drawn
  from (seed, epoch) alone for the whole data set, so again the same whatever the rank count.
  On 700 images the model otherwise learns the training set by heart within a few epochs;
- Adam, fused (one kernel per parameter for the whole update instead of a dozen small ops): on
  CPU the update took 0.9 ms of a 32-image step of about 7 ms, fused 0.4 ms; the same math;
- the convolutions in channels-last layout (weights and each batch): on one CPU thread the
  forward pass took half the time (1.8 against 3.5 ms at 32 images), a step 145 against 197 us
  an image; the same math;
- a one-cycle learning-rate schedule (a warm-up to `lr`, then annealing to near zero): a higher
  peak than a constant rate could keep, and the small steps at the end settle the weights.
"""

from __future__ import annotations

import torch

from minikf.workload.contract import SCHEDULES


def epoch_order(images: int, epoch: int, seed: int) -> torch.Tensor:
    """The job's image indices for `epoch`, in order: one shuffle from (seed, epoch) alone (the
    order torch's DistributedSampler gives one replica)."""
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(images, generator=generator)


def steps_per_epoch(images: int, batch_size: int) -> int:
    """How many steps an epoch takes (the same for every rank, whatever the rank count)."""
    return -(-images // batch_size)


def step_images(order: torch.Tensor, step: int, batch_size: int) -> torch.Tensor:
    """The images of the job's step `step` (the last one of an epoch may be smaller)."""
    return order[step * batch_size:(step + 1) * batch_size]


def split(images: int, weights: list[float]) -> list[int]:
    """`images` shared out in proportion to `weights` (one per rank, in rank order), each rank
    getting at least one while there are enough; largest remainders get the leftovers, the
    lowest rank first on a tie, so every rank computes the same shares from the same weights."""
    ranks = len(weights)
    floor = 1 if images >= ranks else 0
    total = sum(weights)
    exact = [images * w / total if total > 0 else images / ranks for w in weights]
    shares = [max(floor, int(e)) for e in exact]
    while sum(shares) > images:  # the floor of 1 took images from the largest share
        shares[shares.index(max(shares))] -= 1
    by_remainder = sorted(range(ranks), key=lambda r: (-(exact[r] - shares[r]), r))
    for r in by_remainder[:images - sum(shares)]:
        shares[r] += 1
    return shares


def rank_share(images: torch.Tensor, shares: list[int], rank: int) -> torch.Tensor:
    """This rank's contiguous part of a step's `images`."""
    start = sum(shares[:rank])
    return images[start:start + shares[rank]]


# The augmentation: the chance of a horizontal flip, the most pixels of a shift.
FLIP = 0.5
SHIFT = 2


class Augment:
    """Random horizontal flips and shifts, drawn per image and epoch from the seed alone."""

    def __init__(self, images: int, seed: int, enabled: bool = True, flip: float = FLIP,
                 shift: int = SHIFT) -> None:
        if not enabled:
            flip, shift = 0.0, 0
        self.images, self.seed, self.flip, self.shift = images, seed, flip, shift
        self._flips = torch.zeros(images, dtype=torch.bool)
        self._shifts = torch.zeros(images, 2, dtype=torch.int64)

    @property
    def active(self) -> bool:
        return self.flip > 0 or self.shift > 0

    def set_epoch(self, epoch: int) -> None:
        if not self.active:
            return
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        self._flips = torch.rand(self.images, generator=g) < self.flip
        self._shifts = torch.randint(0, 2 * self.shift + 1, (self.images, 2), generator=g)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Images `x` (N, H, W), the data set's images `idx`, as augmented this epoch."""
        if not self.active:
            return x
        x = torch.where(self._flips[idx][:, None, None], x.flip(-1), x)
        if self.shift:
            s, (n, h, w) = self.shift, x.shape
            padded = torch.nn.functional.pad(x, (s, s, s, s))
            shifts = self._shifts[idx]
            rows = shifts[:, 0, None] + torch.arange(h)  # (N, H): where each output row comes from
            cols = shifts[:, 1, None] + torch.arange(w)
            x = padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        return x


def channels_last(net: torch.nn.Module) -> torch.nn.Module:
    """`net` with its weights in channels-last layout (see the module docstring)."""
    return net.to(memory_format=torch.channels_last)


def as_batch(x: torch.Tensor) -> torch.Tensor:
    """Images (N, H, W) as the network's input (N, 1, H, W), channels-last like its weights."""
    return x.unsqueeze(1).contiguous(memory_format=torch.channels_last)


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """The recipe's optimizer: Adam at `lr`, fused (see the module docstring)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def make_schedule(kind: str, optimizer: torch.optim.Optimizer, lr: float, total_steps: int,
                  warmup: float = 0.25) -> torch.optim.lr_scheduler.LRScheduler:
    """`constant`: `lr` throughout. `onecycle`: warm up to `lr` over the first `warmup` of the
    steps, then anneal (cosine) to near 0."""
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, pct_start=warmup,
                                                   total_steps=max(total_steps, 1))
    raise ValueError(f"unknown schedule {kind!r} (known: {', '.join(SCHEDULES)})")
