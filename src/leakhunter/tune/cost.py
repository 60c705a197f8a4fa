"""The inference cost of a trained model: parameters and CPU time per segment.

Measured the same way for every trial, so trials compare: the model in float32 on one CPU
thread (what a logger-class processor or one server core has, and independent of how many
cores the tuning machine has), a fixed batch of :data:`BATCH` segments drawn from a seeded
generator, :data:`WARMUP` passes to settle caches and allocator, then the median of
:data:`REPEATS` timed passes. Other processes on the machine still add noise: compare
latencies within one study, measured on one machine.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ..model.card import load_model
from ..model.cnn import count_parameters

BATCH = 64
WARMUP = 3
REPEATS = 9


@torch.no_grad()
def inference_cost(model_path: str | Path) -> dict[str, Any]:
    """``{"parameters": int, "latency_us": float}`` of ``best.pt`` at ``model_path``:
    microseconds per segment (median over :data:`REPEATS` batches). Raises
    :class:`~leakhunter.model.checkpoint.CheckpointError` for an unreadable model."""
    model, card = load_model(model_path, "cpu")
    n_mels = model.norm_mean.shape[0]
    frames = card.feature.frames_per_segment
    x = torch.randn(BATCH, n_mels, frames, generator=torch.Generator().manual_seed(0)) \
        * 10.0 - 40.0  # dB-like inputs; the values do not change the work done
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(WARMUP):
            model(x)
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return {"parameters": count_parameters(model),
            "latency_us": statistics.median(times) / BATCH * 1e6}

