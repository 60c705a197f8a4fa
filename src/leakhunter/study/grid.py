"""The segmentation grid of a study: every long segment (seconds) x short frame (points) pair,
each checked before any feature is computed (Ma et al. 2025, Fig. 3).

A pair is a :class:`Cell` when the feature front-end and the CNN can both use it; otherwise
it is listed in :attr:`Grid.invalid` with the reason, so a study reports what it skipped
instead of failing hours in. At the paper's 8192 Hz, 0.125-1.0 s x 64-1024 points gives 24
cells: a 0.125 s segment is 1024 points, one 1024-point frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..config import FeatureConfig, ModelConfig
from ..errors import ConfigError
from ..model.cnn import LeakCNN

MIN_FRAMES = 2  # one frame is a single spectrum, not a time-frequency image


@dataclass(frozen=True)
class Cell:
    """One feature configuration of the grid: ``feature`` is the study's base
    :class:`FeatureConfig` with ``segment_s = long_s`` and ``n_fft = short_points``, every
    other setting (sample rate, overlaps, mels, fmin/fmax, top_db) unchanged. Its model input
    is ``[feature.n_mels, feature.frames_per_segment]``."""

    long_s: float  # long segment, seconds
    short_points: int  # short frame (n_fft), samples
    feature: FeatureConfig

    @property
    def key(self) -> str:
        """Stable text id, e.g. ``long0.25-short512``: file names, runs.csv. The seconds are
        the shortest text that reads back as the same float, so distinct values never share
        a key and the key never depends on the platform."""
        return f"long{_seconds(self.long_s)}-short{self.short_points}"


@dataclass(frozen=True)
class Grid:
    """The usable cells, long segment major (the order the values were given in), and the
    pairs left out as ``(long_s, short_points, reason)``."""

    cells: list[Cell]
    invalid: list[tuple[float, int, str]]


def make_grid(long_s: Sequence[float], short_points: Sequence[int], base: FeatureConfig,
              model: ModelConfig) -> Grid:
    """Check every ``long_s x short_points`` pair at ``base``'s sample rate and overlaps.

    A pair is valid when :class:`FeatureConfig` accepts it, its long segment holds at least
    two short frames (``segment_samples >= n_fft + frame_hop``), and a :class:`LeakCNN` of
    ``model`` builds for, and runs on, a ``[1, n_mels, frames]`` zero input.

    Raises :class:`ConfigError` when either list is empty or repeats a value (two cells
    would share a key and overwrite each other's results).
    """
    longs = [float(x) for x in long_s]
    shorts = [int(n) for n in short_points]
    if not longs or not shorts:
        raise ConfigError("the grid needs at least one long segment and one short frame")
    if len({_seconds(x) for x in longs}) != len(longs) or len(set(shorts)) != len(shorts):
        raise ConfigError("the grid repeats a long segment or a short frame")
    cells: list[Cell] = []
    invalid: list[tuple[float, int, str]] = []
    cnn_reasons: dict[tuple[int, int], str | None] = {}  # input shape -> why not (None: ok)
    for seconds in longs:
        for points in shorts:
            try:
                feature = dataclasses.replace(base, segment_s=seconds, n_fft=points)
            except ConfigError as exc:
                invalid.append((seconds, points, str(exc)))
                continue
            if feature.frames_per_segment < MIN_FRAMES:
                invalid.append((seconds, points, _too_few_frames(feature)))
                continue
            shape = (feature.n_mels, feature.frames_per_segment)
            if shape not in cnn_reasons:  # many pairs share a width: build each CNN once
                cnn_reasons[shape] = _cnn_refuses(model, *shape)
            if cnn_reasons[shape] is not None:
                invalid.append((seconds, points, cnn_reasons[shape]))
                continue
            cells.append(Cell(seconds, points, feature))
    return Grid(cells, invalid)


def _too_few_frames(feature: FeatureConfig) -> str:
    frames = feature.frames_per_segment
    count = "one" if frames == 1 else str(frames)
    return (f"a {feature.segment_s:g} s segment at {feature.sample_rate} Hz is "
            f"{feature.segment_samples} points: {count} {feature.n_fft}-point "
            f"frame{'s' if frames != 1 else ''} (at least {MIN_FRAMES} frames needed)")


def _cnn_refuses(model: ModelConfig, n_mels: int, frames: int) -> str | None:
    """Why a :class:`LeakCNN` of ``model`` cannot take ``[n_mels, frames]`` inputs, or None.

    Built as training builds it (a binary head: the class count only sizes the last layer),
    then run in eval mode: batch norm in training mode refuses a batch of one 1 x 1 map,
    which says nothing about the input size. The ``flatten`` head's constructor does run its
    features in training mode, and so fails for maps pooled down to 1 x 1; training builds
    the model the same way, so such a pair is reported too."""
    try:
        net = LeakCNN(n_mels, frames, 2, [0], model).eval()
        with torch.no_grad():
            net(torch.zeros(1, n_mels, frames))
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"the CNN cannot take {n_mels} x {frames} inputs: {first}"
    return None


def _seconds(value: float) -> str:
    """Shortest positional text that reads back as ``value``: 0.25 -> "0.25", 1.0 -> "1"."""
    return np.format_float_positional(float(value), trim="-")
