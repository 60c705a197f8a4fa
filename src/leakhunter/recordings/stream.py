"""Long recordings read in blocks, with memory bounded by the block size.

:func:`waveform_pieces` yields a recording as consecutive pieces of the waveform that
:func:`leakhunter.recordings.audio.load_recording` would return whole. A recording up to ``block_s``
seconds is read whole by ``load_recording`` itself (identical numbers). A longer one is
read twice in blocks: the first pass measures what detrending and the checks need (sums
for the least-squares line, NaN/inf, RMS), the second removes the trend and resamples the
blocks through one continuous soxr stream. Those numbers differ from a whole-file read
only by float rounding and the resampler's block boundaries.

:class:`SegmentAssembler` turns the pieces into consecutive long segments, aligned on the
recording's own segment grid, so features never depend on where the blocks fell.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..config import AudioConfig, FeatureConfig
from ..errors import AudioError
from .audio import (
    keep_truncated,
    load_recording,
    pad_to_segment,
    read_audio,
    read_steps,
    shortfall,
)
from .container import Layout, inspect, open_sound


@dataclass
class Pieces:
    """A recording as consecutive float32 mono ``pieces`` at the feature rate, with its
    ``duration_s`` and ``original_rate``; ``truncated``: the reason, for a file kept although
    it holds less than its header declares (``""`` when whole)."""

    duration_s: float
    original_rate: int
    pieces: Iterator[np.ndarray]
    truncated: str = ""


def waveform_pieces(path: str | Path, feature: FeatureConfig, audio: AudioConfig,
                    block_s: float = 600.0) -> Pieces:
    """The recording at ``path`` in pieces (see the module docstring).

    Raises :class:`AudioError` before the first piece for unreadable, truncated (unless
    ``audio.allow_truncated``), empty, NaN/inf and silent recordings, and ones shorter than
    ``audio.min_duration_s``. Recordings shorter than one segment are not refused here
    (:class:`SegmentAssembler` pads them).
    """
    try:
        layout = inspect(path)
        with open_sound(path, layout) as sound:
            frames, rate = sound.frames, sound.samplerate
    except Exception:
        read_audio(path)  # raises the AudioError (with its reason) that a whole read gives
        raise
    if frames <= int(block_s * rate):
        rec = load_recording(path, feature, audio, layout)
        return Pieces(rec.duration_s, rec.original_sample_rate, iter([rec.waveform]),
                      rec.truncated)
    return _two_pass(path, layout, rate, feature, audio, block_s)


def _blocks(path: str | Path, layout: Layout, frames: int, whole: list[bool]
            ) -> Iterator[np.ndarray]:
    """Mono blocks of ``frames`` frames; where the decoder loses its way part-way (a cut
    FLAC) the blocks end with what decodes before that point and ``whole[0]`` is set
    False."""
    start = 0
    with open_sound(path, layout) as sound:
        while True:
            try:
                block = sound.read(frames, dtype="float32", always_2d=True)
            except sf.LibsndfileError:
                break
            if block.shape[0] == 0:
                return
            start += block.shape[0]
            yield _mono(block)
    whole[0] = False
    for block in read_steps(path, layout, start, frames):
        if block.shape[0]:
            yield _mono(block)


def _mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]


def _two_pass(path: str | Path, layout: Layout, rate: int, feature: FeatureConfig,
              audio: AudioConfig, block_s: float) -> Pieces:
    frames = int(block_s * rate)
    n, s1, st, s2 = 0, 0.0, 0.0, 0.0  # count, sum x, sum t*x, sum x^2 (float64)
    whole = [True]
    for block in _blocks(path, layout, frames, whole):
        if not np.isfinite(block).all():
            raise AudioError(str(path), "invalid samples",
                             "contains NaN or infinite samples")
        t = np.arange(n, n + block.size, dtype=np.float64)
        x = block.astype(np.float64)
        s1, st, s2, n = s1 + x.sum(), st + t @ x, s2 + x @ x, n + block.size
    truncated = shortfall(layout.declared, n, rate, not whole[0])
    keep_truncated(path, truncated, audio.allow_truncated)
    mean = s1 / n
    centre = (n - 1) / 2.0
    var_t = n * (n * n - 1) / 12.0  # sum of (t - centre)^2
    slope = (st - centre * s1) / var_t if audio.detrend else 0.0
    residual = s2 - n * mean * mean - (slope * slope * var_t if audio.detrend else 0.0)
    rms = float(np.sqrt(max(residual, 0.0) / n))
    if rms <= audio.silence_rms:
        raise AudioError(str(path), "silence", f"silence (RMS {rms:.1e})")

    def pieces() -> Iterator[np.ndarray]:
        stream = soxr.ResampleStream(rate, feature.sample_rate, 1, dtype="float32",
                                     quality="HQ")
        start = 0
        for block in _blocks(path, layout, frames, [True]):
            if audio.detrend:
                t = np.arange(start, start + block.size, dtype=np.float64) - centre
                block = (block - (mean + slope * t)).astype(np.float32)
            start += block.size
            yield stream.resample_chunk(block, last=False)
        yield stream.resample_chunk(np.zeros(0, np.float32), last=True)

    return Pieces(n / rate, rate, pieces(), truncated)


class SegmentAssembler:
    """Collects waveform pieces and hands out the complete long segments they contain.

    :meth:`push` returns a waveform whose segments (on the recording's grid) are all
    complete and not yet handed out; :meth:`finish` returns what is left, zero-padded to
    one segment when the whole recording was shorter than one (``padded`` is then True).
    """

    def __init__(self, feature: FeatureConfig):
        self.feature = feature
        self.buffer = np.zeros(0, np.float32)
        self.emitted = 0  # segments handed out so far
        self.padded = False

    def push(self, piece: np.ndarray) -> np.ndarray:
        f = self.feature
        self.buffer = np.concatenate([self.buffer, piece.astype(np.float32, copy=False)])
        n = f.n_segments(self.buffer.size)
        if n == 0:
            return np.zeros(0, np.float32)
        ready = self.buffer[:(n - 1) * f.segment_hop + f.segment_samples]
        self.buffer = self.buffer[n * f.segment_hop:]  # the next segment starts here
        self.emitted += n
        return ready

    def finish(self) -> np.ndarray:
        if self.emitted == 0 and self.buffer.size > 0:
            wave, self.padded = pad_to_segment(self.buffer, self.feature)
            self.emitted = 1
            return wave
        return np.zeros(0, np.float32)
