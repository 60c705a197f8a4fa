"""Two recordings of a pair as one pair of waveforms: decoded, mono, one rate, one length.

A correlator needs both sensors' samples at the same rate and over the same stretch of
time. Whatever the files hold is brought to that and *said*, never silently: a stereo file
is mixed to mono, a file at another rate is resampled to the pair's rate (the higher of the
two unless one is asked for), a start offset known from the names' timestamps is removed
by dropping the earlier recording's first samples, and of two lengths the overlap is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..recordings.audio import read_audio, resample, to_mono


@dataclass(frozen=True)
class PairAudio:
    """Float32 ``a``, ``b`` ``[N]`` at ``rate`` Hz, and what was done to get there."""

    a: np.ndarray
    b: np.ndarray
    rate: int
    notes: tuple[str, ...]
    skipped_s: tuple[float, float] = (0.0, 0.0)  # seconds dropped from A's and B's start

    @property
    def seconds(self) -> float:
        return self.a.shape[0] / self.rate


def read_pair(a: str | Path, b: str | Path, rate: int | None = None,
              offset_s: float = 0.0) -> PairAudio:
    """Read ``a`` and ``b``; ``rate``: the pair's sample rate (``None``: the higher of the
    two files'); ``offset_s``: how much later ``b`` starts than ``a`` (from the names'
    timestamps; 0 when they start together). Raises :class:`~leakhunter.errors.AudioError`
    for a file that cannot be read."""
    notes: list[str] = []
    decoded = {"A": read_audio(a), "B": read_audio(b)}
    target = rate or max(d.rate for d in decoded.values())
    waves = {}
    for side, d in decoded.items():
        # one channel: a view of what was decoded, not a copy (nothing writes to it)
        wave = d.data[:, 0] if d.data.shape[1] == 1 else to_mono(d.data)
        if d.data.shape[1] > 1:
            notes.append(f"{side} has {d.data.shape[1]} channels: mixed to mono")
        if d.rate != target:
            notes.append(f"{side} resampled from {d.rate} Hz to {target} Hz")
            wave = resample(wave, d.rate, target)
        waves[side] = wave
    shift = int(round(abs(offset_s) * target))
    skipped = (shift / target, 0.0) if offset_s > 0 else (0.0, shift / target)
    if shift:
        early = "A" if offset_s > 0 else "B"
        waves[early] = waves[early][shift:]
        notes.append(f"{'B' if early == 'A' else 'A'} starts {abs(offset_s):g} s later "
                     f"(timestamps): {early}'s first {abs(offset_s):g} s dropped")
    n = min(w.shape[0] for w in waves.values())
    longer = max(waves, key=lambda s: waves[s].shape[0])
    extra = waves[longer].shape[0] - n
    if extra:
        notes.append(f"{longer} is {extra / target:.2f} s longer: the overlap, the first "
                     f"{n / target:.2f} s of both, is used")
    return PairAudio(waves["A"][:n].astype(np.float32, copy=False),
                     waves["B"][:n].astype(np.float32, copy=False), int(target), tuple(notes),
                     skipped)
