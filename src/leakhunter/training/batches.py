"""What the training loop feeds the model: batch order, augmentation, and the loss.

The order of an epoch depends only on ``(seed, epoch)`` (and, under torchrun, the rank), so
a resumed run replays it exactly and skips the batches already done. Augmentation draws from
its own ``torch.Generator``, whose state travels in the checkpoint.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainConfig

log = logging.getLogger(__name__)

CPU_BATCH = 256  # larger CPU batches ran slower: their activations leave the caches
# One H200, 20-epoch runs (benchmarks/batch_size.py): 4,096 -> 587,000 segments/s, 8,192 ->
# 839,000, 16,384 -> 1,101,000, with validation and test F1 kept (README, "On a GPU").
CUDA_BATCH = 16384
BASE_LR = 2e-3  # the peak learning rate at CPU_BATCH segments per batch
MIN_STEPS = 16  # an automatic batch size leaves at least this many steps per epoch


def epoch_order(labels: np.ndarray, epoch: int, seed: int, rank: int = 0, world: int = 1,
                balanced: bool = False) -> np.ndarray:
    """Segment indices of one epoch for this rank.

    A seeded permutation of all segments, or (``balanced``) as many draws with replacement,
    each class equally likely. Under torchrun the order is padded by wrapping to a multiple
    of ``world`` and rank ``r`` takes every ``world``-th index from ``r``.
    """
    rng = np.random.default_rng([seed, epoch])
    n = labels.shape[0]
    if balanced:
        counts = np.bincount(labels)
        weights = 1.0 / counts[labels]
        order = rng.choice(n, size=n, replace=True, p=weights / weights.sum())
    else:
        order = rng.permutation(n)
    if world > 1:
        pad = (-n) % world
        order = np.concatenate([order, order[:pad]])[rank::world]
    return order


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive batches; a last batch of one segment is dropped (batch norm needs two)."""
    out = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [b for b in out if len(b) > 1]


def spec_augment(x: torch.Tensor, fill: torch.Tensor, gen: torch.Generator,
                 max_bands: int = 4, max_frames: int = 2) -> torch.Tensor:
    """One frequency mask (up to ``max_bands`` mel bands) and one time mask (up to
    ``max_frames`` frames) per segment of ``x`` ``[B, M, F]``, filled with the band means
    ``fill`` ``[M]`` (zero after the model's normalisation)."""
    b, m, f = x.shape
    dev = x.device

    def mask(size: int, widest: int) -> torch.Tensor:
        width = torch.randint(0, widest + 1, (b, 1), generator=gen)
        start = (torch.rand((b, 1), generator=gen) * (size - width + 1)).long()
        pos = torch.arange(size)[None, :]
        return ((pos >= start) & (pos < start + width)).to(dev)

    masked = mask(m, max_bands)[:, :, None] | mask(f, max_frames)[:, None, :]
    return torch.where(masked, fill[None, :, None].to(x.dtype), x)


def mixup(x: torch.Tensor, alpha: float, gen: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix each segment with another of the batch: returns the mixed inputs, the partner
    indices and the weight ``lam`` of the original (``lam ~ Beta(alpha, alpha)``)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))  # all draws from `gen`
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    partner = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return lam * x + (1.0 - lam) * x[partner], partner, lam


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights ``N / (C * n_c)``, float32 ``[C]``."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return torch.tensor(len(labels) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)


def per_sample_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                    focal_gamma: float | None) -> torch.Tensor:
    """Cross-entropy ``[B]`` (optionally class-weighted), or the focal loss when
    ``focal_gamma`` is given: ``(1 - p_t) ** gamma * CE``."""
    ce = F.cross_entropy(logits.float(), target, weight=weight, reduction="none")
    if focal_gamma is None:
        return ce
    p_t = torch.softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
    return (1.0 - p_t).pow(focal_gamma) * ce


def resolve_auto(cfg: TrainConfig, device: torch.device, segments: int) -> TrainConfig:
    """``cfg`` with an automatic (0) batch size and learning rate made concrete.

    Batch size: 256 on the CPU; on CUDA, 16,384 or less (a power of two) so that an epoch
    of ``segments`` (this process's share) still has :data:`MIN_STEPS` steps, never under
    256. Learning rate: ``2e-3 * sqrt(batch / 256)`` (square-root scaling: 0.016 at 16,384,
    which kept validation and test F1 on one H200). A value given explicitly is kept.
    """
    batch = cfg.batch_size
    if batch == 0:
        batch = CPU_BATCH
        if device.type == "cuda":
            fit = 2 ** int(math.log2(max(segments // MIN_STEPS, 1)))
            batch = max(CPU_BATCH, min(CUDA_BATCH, fit))
    lr = cfg.lr or BASE_LR * math.sqrt(batch / CPU_BATCH)
    if (batch, lr) != (cfg.batch_size, cfg.lr):
        log.info("automatic settings on %s: batch size %d, peak learning rate %.3g",
                 device.type, batch, lr)
    return replace(cfg, batch_size=batch, lr=lr)

