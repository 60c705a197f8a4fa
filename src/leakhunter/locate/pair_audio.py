"""Two recordings of a pair as one pair of waveforms: decoded, mono, one rate, one length.

A correlator needs both sensors' samples at the same rate and over the same stretch of
time. Whatever the files hold is brought to that and *said*, never silently: a stereo file
is mixed to mono, a file at another rate is resampled to the pair's rate (the higher of the
two unless one is asked for), a start offset known from the names' timestamps is removed
by dropping the earlier recording's first samples, and of two lengths the overlap is used.
What cannot be correlated is refused with the reason: NaN or infinite samples, silence
(also a stereo file whose channels cancel when mixed), and one recording given as both.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import AudioConfig
from ..errors import AudioError, InputError
from ..recordings.audio import read_audio, resample, to_mono

SILENCE_RMS = AudioConfig().silence_rms  # what build and predict call silence


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
    for a file that cannot be read or holds nothing to correlate (NaN or infinite samples,
    silence), :class:`~leakhunter.errors.InputError` when A and B hold the same samples."""
    notes: list[str] = []
    paths = {"A": a, "B": b}
    decoded = {"A": read_audio(a), "B": read_audio(b)}
    target = rate or max(d.rate for d in decoded.values())
    waves = {}
    for side, d in decoded.items():
        # one channel: a view of what was decoded, not a copy (nothing writes to it)
        wave = d.data[:, 0] if d.data.shape[1] == 1 else to_mono(d.data)
        _refuse_no_sound(paths[side], wave, d.data)
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
    wave_a, wave_b = (waves[side][:n].astype(np.float32, copy=False) for side in "AB")
    # (the first samples settle it for almost every pair: the whole is compared only then)
    if np.array_equal(wave_a[:1024], wave_b[:1024]) and np.array_equal(wave_a, wave_b):
        raise InputError(f"{a} and {b} hold the same samples: one recording given as both "
                         f"sensors has nothing to correlate")
    return PairAudio(wave_a, wave_b, int(target), tuple(notes), skipped)


def _refuse_no_sound(path: str | Path, wave: np.ndarray, data: np.ndarray) -> None:
    """:class:`AudioError` when a file's samples ``data`` ``[N, C]`` hold NaN or infinite
    values (``invalid samples``), or its mono ``wave`` ``[N]`` holds no sound: an RMS about
    its mean at or below what build and predict call silence (``silence``).

    Two float32 dot products settle almost every file (a tenth of a pair's reading time):
    the power is not finite only when a sample is not (or, in a float file, too large to
    square), and only a near-silent one is measured exactly."""
    n = wave.size
    with np.errstate(over="ignore"):  # (a float file's huge samples: inf, and sound)
        power = float(np.dot(wave, wave)) / n
    if not math.isfinite(power) and not np.isfinite(data).all():
        raise AudioError(str(path), "invalid samples", "contains NaN or infinite samples")
    mean = float(np.dot(wave, _ones(n))) / n
    if power - mean * mean > SILENCE_RMS ** 2 + 1e-4 * power:  # clearly sound
        return
    rms = float(wave.std(dtype=np.float64))  # near silence (or a constant offset): exactly
    if rms <= SILENCE_RMS:
        channels = data.shape[1]
        mixed = f" once its {channels} channels are mixed to mono" if channels > 1 else ""
        raise AudioError(str(path), "silence", f"silence{mixed} (RMS {rms:.1e})")


@functools.lru_cache(maxsize=4)
def _ones(n: int) -> np.ndarray:
    """``n`` float32 ones, read-only: a mean as a dot product (BLAS; a few lengths)."""
    ones = np.ones(n, dtype=np.float32)
    ones.flags.writeable = False
    return ones
