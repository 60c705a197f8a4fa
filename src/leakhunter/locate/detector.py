"""Windows where the detector hears the leak count more (``locate --model best.pt``).

The correlator averages the cross-spectrum over Welch windows. A passing truck, a knock or
a pump starting near one sensor fills some windows with sound the other sensor hears
differently or not at all; the leak is there all the time. With a detector, each window's
share of the average follows how leak-like both sensors sound in it: the model's segment
leak probabilities ``p_A``, ``p_B`` (:meth:`Predictor.predict` with segments), averaged
over the segments whose centres fall in the window, give the window the weight
``FLOOR + sqrt(p_A p_B)``. The geometric mean needs *both* sensors to hear the leak; the
floor keeps every window in, so a detector that hears nothing anywhere leaves the plain
average.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..decisions.predict import Predictor

FLOOR = 0.05  # weight of a window where neither sensor sounds like a leak


@dataclass(frozen=True)
class Timeline:
    """A recording's segment leak probabilities: ``starts_s`` and ``leak`` ``[S]``, each
    segment ``segment_s`` long."""

    starts_s: np.ndarray
    leak: np.ndarray
    segment_s: float


def timelines(model: str | Path, paths: Iterable[str | Path], device: str = "auto",
              workers: int = 0) -> dict[str, Timeline | str]:
    """Each recording's :class:`Timeline` by its path as given, or the status that says why
    the detector could not judge it (``too short``, ``unreadable`` ...)."""
    predictor = Predictor(model, workers=workers, device=device)
    segment_s = predictor.feature.segment_samples / predictor.feature.sample_rate
    out: dict[str, Timeline | str] = {}
    for record in predictor.predict([str(p) for p in dict.fromkeys(paths)], segments=True):
        points = record.get("timeline")
        if not points:
            out[record["path"]] = record["status"]
            continue
        starts, leak, _ = zip(*points)
        out[record["path"]] = Timeline(np.asarray(starts, np.float64),
                                       np.asarray(leak, np.float64), segment_s)
    return out


def window_weights(a: Timeline, b: Timeline, skipped_s: tuple[float, float], windows: int,
                   window: int, rate: float) -> np.ndarray:
    """The weight ``[K]`` of each of ``windows`` Welch windows of ``window`` samples at
    half overlap, over a pair whose first ``skipped_s`` seconds (A, B) were dropped."""
    starts = np.arange(windows) * (window // 2) / rate
    length = window / rate
    heard = [_per_window(t, skip, starts, length) for t, skip in zip((a, b), skipped_s)]
    return FLOOR + np.sqrt(heard[0] * heard[1])


def _per_window(t: Timeline, skip: float, starts: np.ndarray, length: float) -> np.ndarray:
    """Mean leak probability of the segments centred in each window; a window holding no
    segment centre (windows shorter than a segment) takes the nearest segment's."""
    centres = t.starts_s + t.segment_s / 2 - skip
    ends = starts + length
    inside = (centres[None, :] >= starts[:, None]) & (centres[None, :] < ends[:, None])
    counts = inside.sum(axis=1)
    means = (inside * t.leak[None, :]).sum(axis=1) / np.maximum(counts, 1)
    nearest = np.abs(centres[None, :] - (starts + length / 2)[:, None]).argmin(axis=1)
    return np.where(counts > 0, means, t.leak[nearest])


def describe(weights: Mapping[str, float]) -> str:
    """The note a weighted pair carries: each side's mean leak probability."""
    return "windows weighted by the detector (mean leak probability " + ", ".join(
        f"{side} {p:.2f}" for side, p in weights.items()) + ")"
