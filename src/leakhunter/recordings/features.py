"""The one feature front-end: waveform -> long segments -> log-mel (torch, CPU or CUDA).

build, predict, learn and export all compute features here. Two entry points compute the
same numbers:

* :class:`LogMel` maps a batch of raw long segments ``[B, segment_samples]`` to log-mel
  ``[B, n_mels, frames]``. It is an ``nn.Module`` so it can travel inside an exported model.
* :func:`extract` maps whole recordings to their segments' log-mels, batched over many
  recordings. When long segments start on the frame grid (the default: 0.25 s segments with
  50 % overlap, 512-point frames with 50 % overlap), each STFT frame is computed once per
  recording instead of once per segment that contains it, which halves the work.

Mel filterbank: Slaney mel scale with Slaney area normalisation, librosa's default; log power
as librosa's ``power_to_db(S, ref=1.0, amin=1e-10, top_db=...)`` applied per long segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..config import FeatureConfig

AMIN = 1e-10  # power floor before the log, as librosa


def hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa ``htk=False``)."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(freq >= min_log_hz,
                    min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep,
                    mels)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel,
                    min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                    f_sp * mels)


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """Triangular mel filters, float32 ``[n_mels, n_fft // 2 + 1]`` (Slaney-normalised)."""
    n_freq = cfg.n_fft // 2 + 1
    fft_freqs = np.linspace(0.0, cfg.sample_rate / 2, n_freq)
    mel_edges = np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.max_frequency), cfg.n_mels + 2)
    hz_edges = mel_to_hz(mel_edges)
    widths = np.diff(hz_edges)
    ramps = hz_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]  # equal area per filter
    return weights.astype(np.float32)


class LogMel(nn.Module):
    """Raw long segments ``[B, segment_samples]`` (float32, full scale 1.0) to log-mel dB
    ``[B, n_mels, frames_per_segment]`` (float32).

    The window and filterbank are non-persistent buffers: they are derived from the feature
    config, which is what checkpoints store.
    """

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True),
                             persistent=False)
        self.register_buffer("mel_t", torch.from_numpy(mel_filterbank(cfg).T.copy()),
                             persistent=False)  # [n_freq, n_mels]

    def power_mel(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[..., n_fft]`` to mel power ``[..., n_mels]``."""
        return self.power_mel_windowed(frames * self.window)

    def power_mel_windowed(self, frames: torch.Tensor) -> torch.Tensor:
        """Already windowed frames ``[..., n_fft]`` to mel power ``[..., n_mels]``."""
        spec = torch.fft.rfft(frames, dim=-1)
        power = spec.real.square() + spec.imag.square()  # faster than abs() or view_as_real
        return power @ self.mel_t

    def to_db(self, mel_power: torch.Tensor) -> torch.Tensor:
        """Mel power ``[B, frames, n_mels]`` to dB ``[B, n_mels, frames]``, floored at
        ``top_db`` below each segment's maximum."""
        db = 10.0 * torch.log10(mel_power.clamp_min(AMIN))
        if self.cfg.top_db is not None:
            peak = db.amax(dim=(1, 2), keepdim=True)
            db = torch.maximum(db, peak - self.cfg.top_db)
        return db.transpose(1, 2)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        frames = segments.unfold(-1, self.cfg.n_fft, self.cfg.frame_hop)  # [B, F, n_fft]
        return self.to_db(self.power_mel(frames))


def segment_starts(n_segments: int, cfg: FeatureConfig) -> np.ndarray:
    """Start times (s) of a recording's first ``n_segments`` long segments, float32 ``[S]``."""
    return (np.arange(n_segments) * cfg.segment_hop / cfg.sample_rate).astype(np.float32)


def extract(waveforms: Sequence[np.ndarray], front_end: LogMel,
            device: torch.device | str = "cpu", flat: bool | None = None,
            dtype: torch.dtype = torch.float32) -> list[np.ndarray]:
    """Log-mel of every long segment of every recording, computed in one batch.

    ``waveforms``: float32 mono arrays ``[samples_i]`` at ``front_end.cfg.sample_rate``.
    Returns one array ``[S_i, n_mels, frames_per_segment]`` of ``dtype`` per recording,
    where ``S_i = cfg.n_segments(samples_i)`` (the tail shorter than a segment is dropped;
    a recording shorter than one segment gives ``S_i = 0``).

    ``flat`` (default: on CUDA) frames all recordings in one strided view on the device
    (:func:`_extract_flat`) instead of framing each on the host: for a GPU, which then
    receives each sample once and runs one FFT of a bucketed size.
    """
    cfg = front_end.cfg
    counts = [cfg.n_segments(len(w)) for w in waveforms]
    if sum(counts) == 0:
        empty = np.zeros((0, cfg.n_mels, cfg.frames_per_segment), torch.empty(0, dtype=dtype)
                         .numpy().dtype)
        return [empty for _ in waveforms]
    if flat is None:
        flat = torch.device(device).type == "cuda"
    with torch.inference_mode():
        if cfg.segment_hop % cfg.frame_hop == 0 and flat:
            mel = _extract_flat(waveforms, counts, front_end, device)
        elif cfg.segment_hop % cfg.frame_hop == 0:
            mel = _extract_on_frame_grid(waveforms, counts, front_end, device)
        else:
            segs = [torch.from_numpy(np.ascontiguousarray(w)).unfold(
                0, cfg.segment_samples, cfg.segment_hop) for w, n in zip(waveforms, counts) if n]
            mel = front_end(torch.cat(segs).to(device))
        out = mel.to(dtype).cpu().numpy()  # converted on the device: half the copy for fp16
    return list(np.split(out, np.cumsum(counts)[:-1]))


def _extract_on_frame_grid(waveforms: Sequence[np.ndarray], counts: list[int],
                           front_end: LogMel, device: torch.device | str) -> torch.Tensor:
    """Compute each recording's STFT frames once, then gather them into segments.

    Segment ``s`` of a recording holds frames ``s * k + j`` for ``j < frames_per_segment``
    with ``k = segment_hop / frame_hop``: the same samples, hence the same numbers, as
    framing each segment separately in :meth:`LogMel.forward`.
    """
    cfg = front_end.cfg
    k = cfg.segment_hop // cfg.frame_hop
    grid = torch.arange(cfg.frames_per_segment)
    # frames per recording: those under its segments (the tail past the last one is unused)
    n_frames = [(n - 1) * k + cfg.frames_per_segment if n else 0 for n in counts]
    window = front_end.window.cpu()
    frames = torch.empty(sum(n_frames), cfg.n_fft)
    index, offset = [], 0
    for wave, n_seg, n_fr in zip(waveforms, counts, n_frames):
        if n_seg == 0:
            continue
        view = torch.from_numpy(np.ascontiguousarray(wave)).unfold(0, cfg.n_fft, cfg.frame_hop)
        torch.mul(view[:n_fr], window, out=frames[offset:offset + n_fr])  # frame + window
        index.append(offset + torch.arange(n_seg)[:, None] * k + grid[None, :])
        offset += n_fr
    mel_power = front_end.power_mel_windowed(frames.to(device))  # [T, n_mels]
    return front_end.to_db(mel_power[torch.cat(index).to(mel_power.device)])


FLAT_BUCKET_FRAMES = 8192  # frame counts of the flat path are rounded up to a multiple of
                           # this, so cuFFT reuses a few plans instead of planning per batch


def _extract_flat(waveforms: Sequence[np.ndarray], counts: list[int], front_end: LogMel,
                  device: torch.device | str) -> torch.Tensor:
    """The frame-grid computation with every recording framed by one strided view.

    Each recording's used samples are padded to a multiple of ``frame_hop`` and laid end
    to end, so every frame of recording ``r`` starts on one global grid of ``frame_hop``:
    its frame ``j`` is global frame ``offset_r / frame_hop + j``. The samples cross to the
    device once; a few frames that straddle two recordings are computed and never used.
    Same numbers as :func:`_extract_on_frame_grid` (same frames, window, FFT, filters).
    """
    cfg = front_end.cfg
    hop, k = cfg.frame_hop, cfg.segment_hop // cfg.frame_hop
    grid = torch.arange(cfg.frames_per_segment)
    blocks, index, offset = [], [], 0
    for wave, n_seg in zip(waveforms, counts):
        if n_seg == 0:
            continue
        used = ((n_seg - 1) * k + cfg.frames_per_segment - 1) * hop + cfg.n_fft
        padded = -(-used // hop) * hop
        block = np.zeros(padded, np.float32)
        block[:used] = wave[:used]
        blocks.append(block)
        index.append(offset // hop + torch.arange(n_seg)[:, None] * k + grid[None, :])
        offset += padded
    n_frames = (offset - cfg.n_fft) // hop + 1
    bucket = -(-n_frames // FLAT_BUCKET_FRAMES) * FLAT_BUCKET_FRAMES
    samples = np.zeros((bucket - 1) * hop + cfg.n_fft, np.float32)
    samples[:offset] = np.concatenate(blocks)
    flat = torch.from_numpy(samples).to(device)
    frames = flat.unfold(0, cfg.n_fft, hop)  # [bucket, n_fft], a view
    mel_power = front_end.power_mel(frames)  # [bucket, n_mels]
    return front_end.to_db(mel_power[torch.cat(index).to(mel_power.device)])
