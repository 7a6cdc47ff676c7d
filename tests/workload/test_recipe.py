"""The training recipe: any worker count sees the same images per step, augmented the same way;
and a real 2-worker job trains the same model as 1 worker."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from minikf.runtime.ports import free_port
from minikf.workload.contract import worker_argv, worker_env
from minikf.workload.recipe import (
    Augment,
    epoch_order,
    make_schedule,
    rank_share,
    split,
    step_images,
    steps_per_epoch,
)


@pytest.mark.parametrize("images, batch, world", [(700, 64, 2), (700, 64, 1), (256, 64, 3), (10, 4, 2)])
def test_each_step_of_any_worker_count_covers_the_same_images_once(images, batch, world):
    order = epoch_order(images, 3, 0)
    assert steps_per_epoch(images, batch) == -(-images // batch)
    covered = []
    for k in range(steps_per_epoch(images, batch)):
        step = step_images(order, k, batch)
        shares = split(len(step), [1.0] * world)
        parts = [rank_share(step, shares, rank) for rank in range(world)]
        assert torch.equal(torch.cat(parts), step)  # contiguous, in rank order, nothing dropped
        assert max(shares) - min(shares) <= 1
        covered += step.tolist()
    assert sorted(covered) == list(range(images))


def test_the_order_changes_with_the_epoch_and_the_seed():
    assert not torch.equal(epoch_order(100, 1, 0), epoch_order(100, 2, 0))
    assert not torch.equal(epoch_order(100, 1, 0), epoch_order(100, 1, 1))
    assert sorted(epoch_order(100, 1, 0).tolist()) == list(range(100))
    assert torch.equal(epoch_order(100, 1, 0), epoch_order(100, 1, 0))


@pytest.mark.parametrize("images, weights, expected", [
    (64, [1.0, 1.0], [32, 32]),
    (64, [3.0, 1.0], [48, 16]),
    (60, [2.0, 1.0, 1.0], [30, 15, 15]),
    (65, [1.0, 1.0], [33, 32]),          # a tie goes to the lowest rank
    (64, [1000.0, 1.0], [63, 1]),        # every rank keeps at least one image...
    (1, [1.0, 1.0], [1, 0]),             # ...while there are enough
    (64, [0.0, 0.0], [32, 32]),          # no speed known yet: even
])
def test_a_step_is_split_in_proportion_to_the_weights(images, weights, expected):
    assert split(images, weights) == expected


def test_any_split_of_a_step_gives_the_gradient_of_its_mean_loss():
    """Why ranks may take unequal shares: each rank's summed loss over the step's image count,
    summed over the ranks, has the gradient of the whole step's mean loss (to float rounding)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    x, y = torch.rand(64, 28, 28), torch.randint(0, 10, (64,))

    def grads(loss):
        net.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in net.parameters()]

    whole = grads(torch.nn.functional.cross_entropy(net(x), y))
    for shares in ([32, 32], [50, 14], [1, 63], [20, 20, 24]):
        summed = None
        for part in torch.split(torch.arange(64), shares):
            g = grads(torch.nn.functional.cross_entropy(net(x[part]), y[part], reduction="sum") / 64)
            summed = g if summed is None else [a + b for a, b in zip(summed, g, strict=True)]
        for a, b in zip(summed, whole, strict=True):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), shares


def test_augmentation_flips_and_shifts_each_image_by_its_own_draw():
    x = torch.arange(5 * 28 * 28, dtype=torch.float32).reshape(5, 28, 28)
    aug = Augment(5, seed=7)
    aug.set_epoch(1)
    idx = torch.arange(5)
    out = aug(x, idx)
    assert out.shape == x.shape
    for i in range(5):
        image = x[i].flip(-1) if aug._flips[i] else x[i]
        dy, dx = aug._shifts[i].tolist()
        padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
        assert torch.equal(out[i], padded[dy:dy + 28, dx:dx + 28])
    # a subset of the images (a rank's share) gets exactly those images' draws
    assert torch.equal(aug(x[[3, 1]], torch.tensor([3, 1])), out[[3, 1]])
    again = Augment(5, seed=7)
    again.set_epoch(1)
    assert torch.equal(again(x, idx), out)
    again.set_epoch(2)
    assert not torch.equal(again(x, idx), out)


def test_augmentation_off_leaves_the_images_alone():
    x = torch.rand(3, 28, 28)
    aug = Augment(3, seed=0, enabled=False)
    aug.set_epoch(1)
    assert not aug.active and aug(x, torch.arange(3)) is x


def test_schedules():
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam(params, lr=0.01)
    constant = make_schedule("constant", opt, 0.01, 10)
    for _ in range(5):
        opt.step()
        constant.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    opt = torch.optim.Adam(params, lr=0.01)
    cycle = make_schedule("onecycle", opt, 0.01, 100)
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        cycle.step()
    assert max(rates) == pytest.approx(0.01, rel=0.05) and rates.index(max(rates)) in range(20, 30)
    assert rates[0] < 0.001 and rates[-1] < 0.0001
    with pytest.raises(ValueError, match="unknown schedule 'steep'"):
        make_schedule("steep", opt, 0.01, 10)


def _job(data, out, world: int, shm_dir: Path | None = None,
         shares: str = "speed") -> tuple[list[dict], list[str]]:
    """The epochs' metrics lines, and each rank's stderr."""
    port = free_port()
    argv = worker_argv(data, out, 2, 32, 0.005, schedule="onecycle", augment=True, shares=shares)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    procs = [subprocess.Popen(argv, env={**env, **worker_env(rank, world, port, shm_dir=shm_dir)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for rank in range(world)]
    errs = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        errs.append(err.decode())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rows, errs


@pytest.mark.parametrize("exchange", ["gloo", "shared memory"])
def test_two_workers_train_the_model_one_worker_trains(tmp_path, exchange):
    """The job's batch shared out, the same order and augmentation: the loss of every epoch is
    the same to float rounding whether one worker trains or two, and whether the two average
    their gradients through gloo (DDP) or through shared memory (which leaves no file behind)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "train.npz", x=rng.random((200, 28, 28), dtype=np.float32),
             y=rng.integers(0, 10, 200))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    shared = None
    if exchange == "shared memory":
        shared = tmp_path / "shm"  # any directory both ranks can map (the platform uses /dev/shm)
        shared.mkdir()
    (one, _), (two, logs) = _job(data, tmp_path / "one", 1), _job(data, tmp_path / "two", 2, shared)
    used = [f"summing gradients through shared memory ({shared})" in log for log in logs]
    assert used == [shared is not None] * 2, logs
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-4)
    assert [r["accuracy"] for r in two] == pytest.approx([r["accuracy"] for r in one], abs=0.011)
    assert len(two[0]["workers"]) == 2 and all(w["cpu_s"] > 0 for w in two[0]["workers"])
    assert all(sum(w["images"] for w in row["workers"]) == 200 for row in two)
    if shared is not None:
        assert not list(shared.iterdir())


def test_even_shares_repeat_a_two_worker_job_bit_for_bit(tmp_path):
    """`shares: even`: the same split every step, so two runs of the same 2-worker job through
    shared memory give the same losses to the last bit (by speed they may differ in the last
    digits, as the split follows the cores' speeds)."""
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "train.npz", x=rng.random((200, 28, 28), dtype=np.float32),
             y=rng.integers(0, 10, 200))
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / f"shm-{name}").mkdir()
        rows, logs = _job(data, tmp_path / name, 2, tmp_path / f"shm-{name}", shares="even")
        assert all("taking a share of every step evenly" in log for log in logs), logs
        assert all(row["workers"][0]["images"] == row["workers"][1]["images"] == 100 for row in rows)
        runs.append([row["loss"] for row in rows])
    assert runs[0] == runs[1]

