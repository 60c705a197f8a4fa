"""The mel range fitted to the recordings (dataset/mel_range.py): no band above the lowest
source Nyquist frequency, stored in the dataset, and left alone where it must be."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from leakhunter.config import BuildConfig, FeatureConfig
from leakhunter.dataset.build import build_dataset
from leakhunter.dataset.mel_range import fitted


def _write(path: Path, rate: int, seconds: float = 1.0, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).standard_normal(int(rate * seconds)) * 0.1
    sf.write(path, noise.astype(np.float32), rate)
    return path


def test_the_lowest_source_nyquist_wins(tmp_path: Path, caplog) -> None:
    files = [_write(tmp_path / "a.wav", 4096), _write(tmp_path / "b.wav", 8000),
             _write(tmp_path / "c.flac", 44100)]
    bad = tmp_path / "not_audio.wav"
    bad.write_text("not audio")  # unreadable: left to the build's own reading
    caplog.set_level("INFO")
    feature = fitted(FeatureConfig(), [str(p) for p in [*files, bad]])
    assert feature.fmax == 2048.0 and feature.max_frequency == 2048.0
    assert "mel bands up to 2048 Hz" in caplog.text
    # recordings at or above the resampled rate: nothing to fit
    high = [_write(tmp_path / "d.wav", 8192), files[2]]
    assert fitted(FeatureConfig(), [str(p) for p in high]) == FeatureConfig()
    # a range the user gave is theirs
    assert fitted(FeatureConfig(fmax=3000.0), [str(files[0])]).fmax == 3000.0
    assert fitted(FeatureConfig(), [str(bad)]) == FeatureConfig()


def test_build_stores_the_fitted_range_unless_told_not_to(recordings: Path,
                                                          tmp_path: Path) -> None:
    build_dataset(recordings, tmp_path / "fit", BuildConfig(workers=1))
    config = json.loads((tmp_path / "fit" / "config.json").read_text())
    assert config["build"]["feature"]["fmax"] == 2048.0  # synth writes 4,096 Hz
    # learn computes its model's own bands, whatever they are
    build_dataset(recordings, tmp_path / "kept", BuildConfig(workers=1), fit_fmax=False)
    config = json.loads((tmp_path / "kept" / "config.json").read_text())
    assert config["build"]["feature"]["fmax"] is None
