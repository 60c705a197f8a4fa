"""The log-mel front-end against librosa, and its two code paths against each other."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from leakhunter.config import AudioConfig, FeatureConfig
from leakhunter.recordings.audio import load_recording
from leakhunter.recordings.features import LogMel, extract, mel_filterbank, segment_starts

from ..helpers.samples import needs_real, real_files

# Documented tolerance: log-mel within 0.01 dB of librosa (float32 arithmetic, worst in the
# quietest bands; the stored float16 values add up to 0.03 dB of rounding on top).
TOLERANCE_DB = 0.01


def _signal(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.05 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * 440 * t)
    x[sr // 2: sr // 2 + 200] += 0.8  # an impulsive burst: segments differ in level
    return x.astype(np.float32)


def _librosa_logmel(segment: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    power = librosa.feature.melspectrogram(
        y=segment, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.frame_hop,
        center=False, window="hann", power=2.0, n_mels=cfg.n_mels, fmin=cfg.fmin,
        fmax=cfg.fmax)
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=cfg.top_db)


@pytest.mark.parametrize("cfg", [
    FeatureConfig(),
    FeatureConfig(n_mels=64, top_db=None),
    FeatureConfig(sample_rate=4096, n_fft=256, fmin=20.0, fmax=1500.0),
])
def test_filterbank_matches_librosa(cfg: FeatureConfig) -> None:
    ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                              fmin=cfg.fmin, fmax=cfg.fmax)
    np.testing.assert_allclose(mel_filterbank(cfg), ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("cfg", [
    FeatureConfig(),
    FeatureConfig(top_db=None),
    FeatureConfig(n_mels=48, segment_s=0.5, frame_overlap=0.75),
])
def test_logmel_matches_librosa_per_segment(cfg: FeatureConfig) -> None:
    wave = _signal(2.0, cfg.sample_rate)
    (mel,) = extract([wave], LogMel(cfg))
    assert mel.shape == (cfg.n_segments(wave.size), cfg.n_mels, cfg.frames_per_segment)
    for s in range(mel.shape[0]):
        lo = s * cfg.segment_hop
        ref = _librosa_logmel(wave[lo:lo + cfg.segment_samples], cfg)
        np.testing.assert_allclose(mel[s], ref, atol=TOLERANCE_DB)


def test_default_shape_is_32_by_7() -> None:
    cfg = FeatureConfig()
    assert (cfg.segment_samples, cfg.segment_hop, cfg.frame_hop) == (2048, 1024, 256)
    assert cfg.frames_per_segment == 7
    assert cfg.n_segments(8192 * 10) == 79
    assert cfg.n_segments(2047) == 0


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(segment_overlap=0.3)])
def test_batched_extract_equals_module_on_segments(cfg: FeatureConfig) -> None:
    """The frame-grid shortcut (and the fallback when segments are off the frame grid)
    give what the nn.Module gives on each recording's segments."""
    front = LogMel(cfg)
    waves = [_signal(1.3, cfg.sample_rate, seed=i) for i in range(3)] + [np.zeros(100, np.float32)]
    mels = extract(waves, front)
    assert [m.shape[0] for m in mels] == [cfg.n_segments(w.size) for w in waves]
    assert mels[-1].shape == (0, cfg.n_mels, cfg.frames_per_segment)
    for wave, mel in zip(waves[:3], mels[:3]):
        segs = torch.from_numpy(wave).unfold(0, cfg.segment_samples, cfg.segment_hop)
        np.testing.assert_allclose(mel, front(segs).numpy(), atol=1e-4)


def test_segment_starts() -> None:
    cfg = FeatureConfig()
    np.testing.assert_allclose(segment_starts(3, cfg), [0.0, 0.125, 0.25])


@needs_real
def test_real_hydrophone_recordings_give_features() -> None:
    """Real 8000 Hz, 35-40 s recordings resample to 8192 Hz and match librosa there too."""
    cfg = FeatureConfig()
    front = LogMel(cfg)
    for path in real_files():
        rec = load_recording(path, cfg, AudioConfig())
        assert rec.original_sample_rate == 8000
        assert 34.0 <= rec.duration_s <= 41.0
        assert abs(rec.waveform.size - round(rec.duration_s * 8192)) <= 1
        (mel,) = extract([rec.waveform], front)
        assert mel.shape == (cfg.n_segments(rec.waveform.size), 32, 7)
        assert np.isfinite(mel).all()
        ref = _librosa_logmel(rec.waveform[:cfg.segment_samples], cfg)
        np.testing.assert_allclose(mel[0], ref, atol=TOLERANCE_DB)
