"""Reading recordings: decode, mono-mix, resample, clean, and the metadata in file names.

Every stage that reads audio (build, predict, learn) goes through :func:`load_recording`, so
a recording always becomes the same waveform wherever it is read.

File names follow ``sensor_id~recording_id~timestamp~gain_db.<ext>``; a name that does not
is not an error, its metadata is simply left empty.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..config import AudioConfig, FeatureConfig
from ..errors import AudioError
from .container import Layout, inspect, open_sound

log = logging.getLogger(__name__)


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


TIMESTAMP_FORMATS = ("%Y%m%dT%H%M%S", "%Y%m%d_%H%M%S", "%Y%m%d-%H%M%S", "%Y%m%d%H%M%S",
           "%Y-%m-%dT%H-%M-%S", "%Y-%m-%d_%H-%M-%S", "%Y%m%dT%H%M", "%Y%m%d")
"""Timestamp formats tried before ISO 8601 (which :meth:`datetime.fromisoformat` reads)."""


def parse_timestamp(text: str, utc: bool = False) -> datetime | None:
    """A file-name timestamp as a naive datetime, or ``None`` when it is not a date. One
    with a time zone (ISO 8601 ``+01:00``, ``Z``) gives its wall-clock time, to show, or
    with ``utc`` the same instant in UTC, so that recordings named in different zones
    compare by when they began."""
    text = text.strip()
    if not text:
        return None
    for fmt in TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if utc and when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.replace(tzinfo=None)


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
    truncated: str = ""  # why the file holds less than its header declares (kept: allowed)


@dataclass(frozen=True)
class Decoded:
    """A decoded file: float32 ``data`` ``[frames, channels]`` in [-1, 1] at ``rate`` Hz;
    ``truncated``: for a file kept although it holds less than its header declares, the
    reason (``""`` when the file is whole)."""

    data: np.ndarray
    rate: int
    truncated: str = ""


def read_audio(path: str | Path, allow_truncated: bool = False,
               layout: Layout | None = None) -> Decoded:
    """Decode a file whole, checking it holds what its header declares
    (:mod:`.container`).

    Raises :class:`AudioError`: ``unreadable`` (cannot be opened, not audio, damaged from
    its start), ``truncated`` (the header declares more sound than the file holds, or
    decoding stops part-way: "truncated: header declares 10.00 s, file holds 0.12 s"),
    ``empty`` (no samples). With ``allow_truncated`` a truncated file's part that is there
    is returned instead, its reason in :attr:`Decoded.truncated` and a warning logged.
    ``layout``: the file's :class:`Layout` when the caller has read it already.
    """
    path = str(path)
    try:
        layout = inspect(path) if layout is None else layout
        data, rate, stopped, info = _decode(path, layout)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        # libsndfile's message repeats the path; its error_string is the reason alone
        why = getattr(exc, "error_string", "") or _first_line(exc)
        raise AudioError(path, "unreadable",
                         f"unreadable or not audio ({why.rstrip('.')})") from None
    except OSError as exc:
        raise AudioError(path, "unreadable", f"cannot open ({exc.strerror or exc})") from None
    if layout.placeholder and data.shape[0] and "placeholder" not in _said:  # (none: empty)
        _said.add("placeholder")  # once per process: a recorder writes many such files
        log.info("%s: its header's sizes were never written (a recorder streaming to the "
                 "file); reading the %.2f s it holds (other such files are read alike "
                 "without a word)", path, data.shape[0] / rate)
    reason = shortfall(layout.declared, data.shape[0], rate, stopped, info)
    keep_truncated(path, reason, allow_truncated and data.shape[0] > 0)  # nothing to keep
    if data.shape[0] == 0:
        raise AudioError(path, "empty", "empty (no samples)")
    return Decoded(data, int(rate), reason)


def keep_truncated(path: str | Path, reason: str, allowed: bool) -> None:
    """The one rule for a truncated file (``reason`` non-empty): :class:`AudioError`
    ``truncated`` unless ``allowed``, else a warning that the part there is kept."""
    if not reason:
        return
    if not allowed:
        raise AudioError(str(path), "truncated", reason)
    log.warning("%s: %s; keeping the part that is there (allow truncated)", path, reason)


def shortfall(declared: int | None, frames: int, rate: int, stopped: bool,
              extra_info: str = "") -> str:
    """Why a file that decoded to ``frames`` is truncated, or ``""`` when it is whole:
    fewer frames than the header's ``declared``, decoding that ``stopped`` part-way, or an
    Ogg stream that ends without its end marker (libsndfile's ``extra_info`` says so)."""
    holds = f"file holds {frames / rate:.2f} s"
    if declared is not None and frames < declared:
        return f"truncated: header declares {declared / rate:.2f} s, {holds}"
    if stopped:
        return f"truncated: decoding stops part-way, {holds}"
    if "lacks an end-of-stream" in extra_info or "ended unexpectedly" in extra_info:
        return f"truncated: the stream ends without its end marker, {holds}"
    return ""


STEP_FRAMES = 1024  # frames per read while following a decoder that loses its way


def read_steps(path: str | Path, layout: Layout, start: int, frames: int) -> list[np.ndarray]:
    """Up to ``frames`` frames (-1: to the end) from frame ``start`` as float32
    ``[n, channels]`` blocks of :data:`STEP_FRAMES`, ending at the first that fails to
    decode: what is there of a file whose decoder loses its way part-way (a cut FLAC).
    The file is opened afresh (a decoder that lost sync cannot seek). Raises
    ``LibsndfileError`` when not even the first step decodes."""
    parts, got = [], 0
    with open_sound(path, layout) as sound:
        if start:
            sound.seek(start)
        try:
            while frames < 0 or got < frames:
                want = STEP_FRAMES if frames < 0 else min(STEP_FRAMES, frames - got)
                step = sound.read(want, dtype="float32", always_2d=True)
                if not len(step):
                    break
                parts.append(step)
                got += len(step)
        except sf.LibsndfileError:
            if not parts:
                raise
        return parts or [np.zeros((0, sound.channels), np.float32)]


def _decode(path: str, layout: Layout) -> tuple[np.ndarray, int, bool, str]:
    """``(data, rate, stopped part-way, libsndfile's extra_info)``: the whole file in one
    read, or, where the decoder loses its way part-way, what decodes before it."""
    plain = layout.pcm16
    if plain and layout.declared is not None and layout.available is not None \
            and layout.available >= layout.declared:
        # a whole plain 16-bit WAV: its samples read as they lie, without a decoder
        # (several times faster for the short recordings a correlator reads by the
        # thousand), scaled as libsndfile scales them: x / 32768, bit for bit
        raw = np.fromfile(path, dtype="<i2", count=layout.declared * plain.channels,
                          offset=plain.offset)
        data = np.multiply(raw.reshape(-1, plain.channels), PCM16_SCALE, dtype=np.float32)
        return data, plain.rate, False, ""
    with open_sound(path, layout) as sound:
        rate, channels = sound.samplerate, sound.channels
        # libsndfile's log text tells a cut Ogg stream only; building it costs time
        info = sound.extra_info if sound.format == "OGG" else ""
        try:
            if sound.subtype == "PCM_16":
                # libsndfile's own conversion of 16-bit samples to float is several times
                # slower than reading them whole and scaling here (the same x / 32768)
                raw = sound.read(dtype="int16", always_2d=True)
                return np.multiply(raw, PCM16_SCALE, dtype=np.float32), rate, False, info
            return sound.read(dtype="float32", always_2d=True), rate, False, info
        except sf.LibsndfileError:
            pass
    try:
        return np.concatenate(read_steps(path, layout, 0, -1)), rate, True, info
    except sf.LibsndfileError:
        if layout.declared is None:
            raise
        # a sound header that reads, then nothing that decodes: cut before its first frame
        return np.zeros((0, channels), np.float32), rate, True, info


_said: set[str] = set()  # what this process has said once already
PCM16_SCALE = np.float32(1.0 / 32768.0)  # libsndfile's full scale of 16-bit samples


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
    # numpy sums float32 pairwise: as exact as a float64 mean here, at half its cost
    mean = np.float32(waveform.sum(dtype=np.float32) / np.float32(max(n, 1)))
    if n < 2:
        return waveform - mean
    t = _centred_time(n)
    slope = float(np.dot(t, waveform)) / (n * (n * n - 1) / 12.0)  # sum(t*x) / sum(t**2)
    trend = np.multiply(t, np.float32(slope))
    trend += mean
    return np.subtract(waveform, trend, out=trend)


@functools.lru_cache(maxsize=4)
def _centred_time(n: int) -> np.ndarray:
    """``0 .. n-1`` less its mean, float32, read-only: centred time, so that slope and
    mean decouple; kept for the few lengths a folder of recordings has."""
    t = np.arange(n, dtype=np.float32)
    t -= (n - 1) / 2.0
    t.flags.writeable = False
    return t


def load_recording(path: str | Path, feature: FeatureConfig, audio: AudioConfig,
                   layout: Layout | None = None) -> Recording:
    """Read, check and prepare one recording at ``feature.sample_rate``: mono, resampled
    with soxr, detrended (unless ``audio.detrend`` is off).

    Raises :class:`AudioError` (with a short reason) for anything that makes the recording
    unusable: unreadable, truncated (unless ``audio.allow_truncated``), empty, NaN/inf
    samples, silence, or shorter than ``audio.min_duration_s``. A recording above that floor
    but shorter than one long segment is returned as it is: callers pad it with
    :func:`pad_to_segment`.
    The gain check is not done here: it needs only the name (see :func:`gain_too_low`).
    ``layout``: the file's header, when the caller has read it (:func:`read_audio`).
    """
    decoded = read_audio(path, audio.allow_truncated, layout)
    data, rate = decoded.data, decoded.rate
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
    return Recording(str(path), wave, rate, duration, content_hash, decoded.truncated)


def pad_to_segment(wave: np.ndarray, feature: FeatureConfig) -> tuple[np.ndarray, bool]:
    """``(waveform, padded)``: a waveform shorter than one long segment zero-padded at the
    end to exactly one segment (``padded`` True), anything longer unchanged. The one rule
    for short recordings in ``build`` and ``predict``."""
    if 0 < wave.shape[0] < feature.segment_samples:
        return np.pad(wave, (0, feature.segment_samples - wave.shape[0])), True
    return wave, False


def source_rate(path: str | Path) -> int | None:
    """The sample rate a file's header declares, or ``None`` when it cannot be read (the
    file's reading then says why)."""
    try:
        return int(sf.info(str(path)).samplerate)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError, ValueError):
        return None


def gain_too_low(meta: NameMeta, audio: AudioConfig) -> bool:
    """True when the name's gain says the sensor was out of water (gain <= minimum)."""
    return meta.gain_db is not None and meta.gain_db <= audio.min_gain_db


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
