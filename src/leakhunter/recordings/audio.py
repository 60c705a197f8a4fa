"""Reading recordings: decode, mono-mix, resample, clean, and the metadata in file names.

Every stage that reads audio (build, predict, learn) goes through :func:`load_recording`, so
a recording always becomes the same waveform wherever it is read.

File names follow ``sensor_id~recording_id~timestamp~gain_db.<ext>``; a name that does not
is not an error, its metadata is simply left empty.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..config import AudioConfig, FeatureConfig
from ..errors import AudioError


@dataclass(frozen=True)
class NameMeta:
    """Metadata parsed from a file name; empty strings / None when the name does not say."""

    sensor_id: str = ""
    recording_id: str = ""
    timestamp: str = ""
    gain_db: float | None = None


def parse_name(path: str | Path) -> NameMeta:
    """Parse ``sensor_id~recording_id~timestamp~gain_db`` from the file stem.

    Names with another number of ``~`` fields give an empty :class:`NameMeta`; a gain that
    is not a number gives ``gain_db=None`` while the other fields are kept.
    """
    parts = Path(path).stem.split("~")
    if len(parts) != 4 or not parts[0].strip():
        return NameMeta()
    sensor, recording, timestamp, gain = (p.strip() for p in parts)
    try:
        gain_db: float | None = float(gain)
        if not math.isfinite(gain_db):
            gain_db = None
    except ValueError:
        gain_db = None
    return NameMeta(sensor, recording, timestamp, gain_db)


@dataclass(frozen=True)
class Recording:
    """A decoded, cleaned recording ready for the feature front-end.

    ``waveform`` is float32 mono at the feature sample rate, shape ``[samples]``;
    ``content_hash`` is the SHA-256 of the decoded samples at the original rate, so the same
    audio is recognised whatever its file name or container.
    """

    path: str
    waveform: np.ndarray
    original_sample_rate: int
    duration_s: float
    content_hash: str


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``[frames, channels]`` in [-1, 1] and its sample rate.

    Raises :class:`AudioError` for unreadable, non-audio, truncated-to-nothing or empty files.
    """
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        # libsndfile's message repeats the path; its error_string is the reason alone
        why = getattr(exc, "error_string", "") or _first_line(exc)
        raise AudioError(str(path), "unreadable",
                         f"unreadable or not audio ({why.rstrip('.')})") from None
    except OSError as exc:
        raise AudioError(str(path), "unreadable",
                         f"cannot open ({exc.strerror or exc})") from None
    if data.shape[0] == 0:
        raise AudioError(str(path), "empty", "empty (no samples)")
    return data, int(rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Mix ``[frames, channels]`` to ``[frames]`` by averaging the channels."""
    return data[:, 0].copy() if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def resample(waveform: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample float32 ``[samples]`` with soxr (high quality); a no-op at equal rates."""
    if rate_in == rate_out:
        return waveform
    return soxr.resample(waveform, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def remove_trend(waveform: np.ndarray) -> np.ndarray:
    """Subtract the least-squares line (DC offset and linear drift) from ``[samples]``."""
    n = waveform.shape[0]
    mean = np.float32(waveform.mean(dtype=np.float64))
    if n < 2:
        return waveform - mean
    t = np.arange(n, dtype=np.float32)
    t -= (n - 1) / 2.0  # centred time: slope and mean decouple
    slope = float(np.dot(t, waveform)) / (n * (n * n - 1) / 12.0)  # sum(t*x) / sum(t**2)
    trend = t
    trend *= np.float32(slope)
    trend += mean
    return np.subtract(waveform, trend, out=trend)


def load_recording(path: str | Path, feature: FeatureConfig, audio: AudioConfig
                   ) -> Recording:
    """Read, check and prepare one recording at ``feature.sample_rate``: mono, resampled
    with soxr, detrended (unless ``audio.detrend`` is off).

    Raises :class:`AudioError` (with a short reason) for anything that makes the recording
    unusable: unreadable, empty, NaN/inf samples, silence, or shorter than
    ``audio.min_duration_s``. A recording above that floor but shorter than one long
    segment is returned as it is: callers pad it with :func:`pad_to_segment`.
    The gain check is not done here: it needs only the name (see :func:`gain_too_low`).
    """
    data, rate = read_audio(path)
    if not np.isfinite(data).all():
        raise AudioError(str(path), "invalid samples", "contains NaN or infinite samples")
    duration = data.shape[0] / rate
    # Detrend before resampling: half the samples at typical rates, and a DC offset would
    # otherwise ring at the resampler's edges.
    wave = to_mono(data)
    wave = remove_trend(wave) if audio.detrend else wave
    centred = wave if audio.detrend else wave - wave.mean(dtype=np.float64)
    rms = float(np.sqrt(np.dot(centred, centred) / centred.size))
    if rms <= audio.silence_rms:
        raise AudioError(str(path), "silence", f"silence (RMS {rms:.1e})")
    wave = resample(wave, rate, feature.sample_rate)
    if duration < audio.min_duration_s:
        raise AudioError(str(path), "too short",
                         f"too short ({duration:.3f} s; the minimum duration is "
                         f"{audio.min_duration_s:g} s)")
    content_hash = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
    return Recording(str(path), wave, rate, duration, content_hash)


def pad_to_segment(wave: np.ndarray, feature: FeatureConfig) -> tuple[np.ndarray, bool]:
    """``(waveform, padded)``: a waveform shorter than one long segment zero-padded at the
    end to exactly one segment (``padded`` True), anything longer unchanged. The one rule
    for short recordings in ``build`` and ``predict``."""
    if 0 < wave.shape[0] < feature.segment_samples:
        return np.pad(wave, (0, feature.segment_samples - wave.shape[0])), True
    return wave, False


def gain_too_low(meta: NameMeta, audio: AudioConfig) -> bool:
    """True when the name's gain says the sensor was out of water (gain <= minimum)."""
    return meta.gain_db is not None and meta.gain_db <= audio.min_gain_db


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
