"""Automatic training settings (leakhunter.training.batches): the batch size and learning
rate chosen for a GPU or the CPU and the size of the training split."""

from __future__ import annotations

import pytest
import torch

from leakhunter.config import TrainConfig
from leakhunter.training.batches import resolve_auto


def test_automatic_batch_size_and_rate() -> None:
    gpu, cpu = torch.device("cuda", 0), torch.device("cpu")
    big = resolve_auto(TrainConfig(), gpu, 2_000_000)  # capped
    assert (big.batch_size, big.lr) == (16384, pytest.approx(0.016))
    mid = resolve_auto(TrainConfig(), gpu, 200_000)  # 16 steps at least: 8192
    assert (mid.batch_size, mid.lr) == (8192, pytest.approx(2e-3 * 32 ** 0.5))
    small = resolve_auto(TrainConfig(), gpu, 10_000)  # 16 steps at least: 512
    assert (small.batch_size, small.lr) == (512, pytest.approx(2e-3 * 2 ** 0.5))
    assert resolve_auto(TrainConfig(), gpu, 100).batch_size == 256
    assert (resolve_auto(TrainConfig(), cpu, 200_000).batch_size,
            resolve_auto(TrainConfig(), cpu, 200_000).lr) == (256, pytest.approx(2e-3))
    given = resolve_auto(TrainConfig(batch_size=64, lr=1e-3), gpu, 200_000)
    assert (given.batch_size, given.lr) == (64, 1e-3)
