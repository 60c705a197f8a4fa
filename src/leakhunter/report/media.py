"""Listening and looking: a recording's audio clip and spectrogram, ready to embed.

Audio is the recording as decoded (mono mix), cut to at most ``clip_s`` seconds around the
segment the model found most leak-like, resampled down to the lowest rate that keeps every
frequency within 60 dB of the spectrum's peak (content 60 dB down is inaudible beside the
peak), peak-normalised so quiet loggers can be heard, and encoded as Ogg/Vorbis (FLAC, then
16-bit WAV, where the installed libsndfile lacks Vorbis).

The spectrogram is the model's own front-end
(:class:`leakhunter.recordings.features.LogMel`) run over the same clip: log-mel power in
dB, ``n_mels`` rows (lowest band at the bottom) by STFT frames, coloured with a ``top_db``
range below its peak.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from ..config import AudioConfig, FeatureConfig
from ..errors import AudioError
from ..recordings.audio import read_audio, remove_trend, resample, to_mono
from ..recordings.features import LogMel

MIN_AUDIO_RATE = 4000  # Hz; browsers decode lower rates, but some audio outputs click
RATE_STEP = 500  # Hz; reduced rates are rounded up to a multiple of this
AUDIBLE_DB = 60.0  # frequencies this far below the spectrum's peak count as inaudible
PEAK_LEVEL = 0.9  # normalised peak amplitude of an embedded clip
SPECTROGRAM_DB = 80.0  # colour range below the clip's loudest band
CODECS = (("OGG", "VORBIS", "audio/ogg"), ("FLAC", "PCM_16", "audio/flac"),
          ("WAV", "PCM_16", "audio/wav"))

_FRONT_ENDS: dict[FeatureConfig, LogMel] = {}  # one per feature config per process


def clip_window(duration_s: float, clip_s: float, peak_s: float | None,
                segment_s: float) -> tuple[float, float]:
    """``(start, end)`` seconds of the clip: ``clip_s`` long (or the whole recording),
    centred on the peak segment when one is known, else from the start."""
    length = min(clip_s, duration_s)
    centre = (peak_s + segment_s / 2) if peak_s is not None else length / 2
    start = min(max(0.0, centre - length / 2), duration_s - length)
    return start, start + length


def audible_rate(wave: np.ndarray, rate: int) -> int:
    """The lowest sample rate (Hz, at most ``rate``) whose Nyquist frequency keeps every
    part of ``wave``'s averaged power spectrum within :data:`AUDIBLE_DB` of its peak."""
    n = min(2048, 1 << int(np.log2(max(wave.size, 2))))
    frames = np.lib.stride_tricks.sliding_window_view(wave, n)[::max(1, n // 2)]
    power = (np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2).mean(axis=0)
    loud = np.flatnonzero(power >= power.max() * 10 ** (-AUDIBLE_DB / 10))
    top_hz = (loud[-1] + 1) * rate / n if loud.size else rate / 2
    wanted = int(np.ceil(2 * top_hz / RATE_STEP) * RATE_STEP)
    return int(min(rate, max(MIN_AUDIO_RATE, wanted)))


def encode_audio(wave: np.ndarray, rate: int) -> tuple[bytes, str]:
    """``wave`` (float32 mono) as compressed audio bytes and their MIME type."""
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    wave = wave * (PEAK_LEVEL / peak) if peak > 0 else wave
    for fmt, subtype, mime in CODECS:
        if not sf.check_format(fmt, subtype):
            continue
        buf = io.BytesIO()
        sf.write(buf, wave.astype(np.float32), rate, format=fmt, subtype=subtype)
        return buf.getvalue(), mime
    # unreachable with any libsndfile: 16-bit WAV is always there
    raise RuntimeError("libsndfile writes none of Ogg/Vorbis, FLAC and 16-bit WAV")


def spectrogram(wave: np.ndarray, feature: FeatureConfig) -> tuple[np.ndarray, float, float]:
    """Log-mel dB ``[n_mels, frames]`` of ``wave`` (at ``feature.sample_rate``) through the
    model's front-end, and the colour range ``(low_db, high_db)``."""
    front = _FRONT_ENDS.get(feature)
    if front is None:
        front = _FRONT_ENDS[feature] = LogMel(feature)
    if wave.size < feature.n_fft:
        wave = np.pad(wave, (0, feature.n_fft - wave.size))
    with torch.inference_mode():
        frames = torch.from_numpy(np.ascontiguousarray(wave, np.float32)).unfold(
            0, feature.n_fft, feature.frame_hop)
        db = 10.0 * torch.log10(front.power_mel(frames).clamp_min(1e-10))
    db = db.T.numpy()
    high = float(db.max())
    return db, high - SPECTROGRAM_DB, high


def spectrogram_png(db: np.ndarray, low: float, high: float) -> bytes:
    """A PNG of ``db`` (lowest band at the bottom) coloured with matplotlib's magma map."""
    from matplotlib import colormaps
    from PIL import Image

    scaled = np.clip((db - low) / max(high - low, 1e-6), 0.0, 1.0)[::-1]
    lut = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    image = Image.fromarray(lut[(scaled * 255).astype(np.uint8)], "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def recording_media(path: str | None, want_audio: bool, want_spectrogram: bool,
                    feature: FeatureConfig, audio: AudioConfig, clip_s: float,
                    peak_s: float | None) -> dict[str, Any]:
    """What to embed for one recording: ``audio`` (base64), ``mime``, ``rate``, ``bytes``,
    ``clip`` ``[start, end, duration]`` (s), ``spectrogram`` (base64 PNG) and ``db``
    ``[low, high]``; or ``missing`` with the reason the file cannot be read. Never raises
    for a bad recording: the report keeps its row and says why."""
    if not path or not Path(path).is_file():
        return {"missing": "the recording file is missing"}
    try:
        # what a truncated file holds is worth hearing: its row already says truncated
        decoded = read_audio(path, allow_truncated=True)
    except AudioError as exc:
        return {"missing": exc.reason}
    data, rate = decoded.data, decoded.rate
    if not np.isfinite(data).all():
        return {"missing": "contains NaN or infinite samples"}
    wave = to_mono(data)
    duration = wave.size / rate
    start, end = clip_window(duration, clip_s, peak_s, feature.segment_s)
    clip = wave[int(round(start * rate)):int(round(end * rate))]
    out: dict[str, Any] = {"clip": [round(start, 3), round(end, 3), round(duration, 3)]}
    if want_audio and clip.size:
        target = audible_rate(clip, rate)
        encoded, mime = encode_audio(resample(clip, rate, target), target)
        out.update(audio=base64.b64encode(encoded).decode("ascii"), mime=mime, rate=target,
                   bytes=len(encoded))
    if want_spectrogram and clip.size:
        # the front-end's view: detrended as build/predict do, at the model's sample rate
        model_wave = resample(remove_trend(clip) if audio.detrend else clip, rate,
                              feature.sample_rate)
        db, low, high = spectrogram(model_wave, feature)
        out.update(spectrogram=base64.b64encode(spectrogram_png(db, low, high)).decode(),
                   db=[round(low, 1), round(high, 1)])
    return out
