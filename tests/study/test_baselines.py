"""The MFCC baselines: librosa's MFCCs from leakhunter's front end, the paper's classifiers,
the optional xgboost extra."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from leakhunter.config import FeatureConfig
from leakhunter.dataset.segments import SplitData
from leakhunter.errors import ConfigError, InputError
from leakhunter.recordings.features import LogMel
from leakhunter.study import baselines
from leakhunter.study.baselines import (
    BASELINES,
    N_MFCC,
    MissingExtra,
    available,
    make_classifier,
    mfcc,
    run_baseline,
    segment_vectors,
    split_vectors,
    stratified_subsample,
)

SR = 8192
XGBOOST_LINE = "mfcc-xgboost needs xgboost: pip install 'leakhunter[baselines]'"


def _waveforms() -> np.ndarray:
    """Four 0.25 s segments at 8192 Hz, float32 [4, 2048]: white, brown and faint windowed
    noise, and a sine over a noise floor far below it (its log-mel spans more than 80 dB,
    so the top_db floor acts)."""
    rng = np.random.default_rng(0)
    t = np.arange(2048) / SR
    return np.stack([rng.normal(0, 0.1, 2048), np.cumsum(rng.normal(0, 0.01, 2048)),
                     0.5 * np.sin(2 * np.pi * 440 * t) + 1e-6 * rng.normal(size=2048),
                     0.01 * rng.normal(size=2048) * np.hanning(2048)]).astype(np.float32)


def _log_mel(cfg: FeatureConfig, waves: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return LogMel(cfg)(torch.from_numpy(waves)).numpy()  # [4, 32, 7]


@pytest.mark.parametrize("top_db", [None, 80.0])
def test_mfcc_equals_librosa_on_the_same_log_mel(top_db: float | None) -> None:
    librosa = pytest.importorskip("librosa")
    mel = _log_mel(FeatureConfig(top_db=top_db), _waveforms())
    assert mel.shape == (4, 32, 7)
    ours = mfcc(mel)
    assert ours.shape == (4, N_MFCC, 7) and ours.dtype == np.float32
    for m, got in zip(mel, ours):
        np.testing.assert_allclose(got, librosa.feature.mfcc(S=m, n_mfcc=N_MFCC),
                                   rtol=0, atol=1e-3)
    np.testing.assert_allclose(mfcc(mel[0], n_mfcc=32), librosa.feature.mfcc(S=mel[0],
                               n_mfcc=32), rtol=0, atol=1e-3)  # a single [M, F] works too


def test_mfcc_equals_librosa_from_the_waveform() -> None:
    """leakhunter's front end is librosa's melspectrogram (periodic Hann window, no
    centring, power 2, Slaney mel scale and area norm) and power_to_db (ref 1.0, amin
    1e-10, top_db 80 per segment: librosa is called per segment)."""
    librosa = pytest.importorskip("librosa")
    waves = _waveforms()
    ours = mfcc(_log_mel(FeatureConfig(), waves))
    for wave, got in zip(waves, ours):
        ref = librosa.feature.mfcc(
            y=wave, sr=SR, n_mfcc=N_MFCC, n_fft=512, hop_length=256, win_length=512,
            window="hann", center=False, power=2.0, n_mels=32, fmin=0.0, fmax=SR / 2,
            htk=False, mel_norm="slaney")
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-3)


def test_segment_vectors_average_mfccs_over_frames() -> None:
    mel = _log_mel(FeatureConfig(), _waveforms()).astype(np.float16)
    vectors = segment_vectors(mel)
    assert vectors.shape == (4, N_MFCC) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, mfcc(mel).mean(axis=2), rtol=0, atol=1e-3)
    with pytest.raises(ConfigError, match="n_mfcc"):
        mfcc(mel, n_mfcc=33)
    with pytest.raises(InputError, match="segments, mels, frames"):
        segment_vectors(mel[0])


def _split(seed: int, name: str, recordings: int = 8, segments: int = 12) -> SplitData:
    """A preloaded split of ``recordings`` (alternately LEAK and NOLEAK) of ``segments``
    segments each: leak segments carry 15 dB more in the upper 16 mel bands."""
    rng = np.random.default_rng(seed)
    file_label = np.arange(recordings) % 2  # labels: 0 LEAK, 1 NOLEAK
    file_index = np.repeat(np.arange(recordings), segments)
    label = file_label[file_index]
    mel = rng.normal(-40.0, 2.0, (len(label), 32, 7))
    mel[label == 0, 16:] += 15.0
    return SplitData(Path(f"{name}.h5"), name, ["LEAK", "NOLEAK"], FeatureConfig(),
                     label.astype(np.int64), file_index.astype(np.int64),
                     file_label.astype(np.int64), [f"{name}/{i}.wav" for i in
                                                   range(recordings)],
                     [f"s{i}" for i in range(recordings)], {},
                     torch.from_numpy(mel.astype(np.float16)))


@pytest.mark.parametrize("name", ["mfcc-rf", "mfcc-svm"])
def test_separable_segments_give_accuracy_one(name: str) -> None:
    got = run_baseline(name, _split(0, "TRAINING"), _split(1, "VALIDATION"),
                       _split(2, "TESTING"), positive=[0], seed=3)
    assert set(got) == {"accuracy", "precision", "sensitivity", "specificity", "f1", "auc",
                        "threshold"}
    assert got["accuracy"] == got["f1"] == got["auc"] == 1.0
    assert 0.0 < got["threshold"] < 1.0


def test_svm_fits_on_a_stratified_subsample_of_a_large_training_set(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(baselines, "SVM_MAX_SEGMENTS", 40)
    with caplog.at_level(logging.INFO, logger="leakhunter.study.baselines"):
        got = run_baseline("mfcc-svm", _split(0, "TRAINING"), _split(1, "VALIDATION"),
                           _split(2, "TESTING"), positive=[0], seed=3)
    assert "stratified random 40 of 96 training segments" in caplog.text
    assert got["accuracy"] == 1.0


def test_stratified_subsample_keeps_class_shares() -> None:
    y = np.r_[np.zeros(300, int), np.ones(100, int)]
    keep = stratified_subsample(y, 40, seed=1)
    assert len(keep) == 40 and np.all(np.diff(keep) > 0)
    assert (y[keep] == 1).sum() == 10
    np.testing.assert_array_equal(keep, stratified_subsample(y, 40, seed=1))
    np.testing.assert_array_equal(stratified_subsample(y, 500, seed=1), np.arange(400))


def test_split_vectors_read_from_disk_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _split(4, "TESTING", recordings=3, segments=5)
    expected = segment_vectors(data.mel.float().numpy())
    full, data.mel = data.mel, None
    asked = []

    def batch(indices: np.ndarray) -> torch.Tensor:  # SplitData.batch of a split on disk
        asked.append(len(indices))
        return full[torch.from_numpy(indices)].float()

    monkeypatch.setattr(data, "batch", batch)
    np.testing.assert_allclose(split_vectors(data, chunk=4), expected, rtol=0, atol=1e-5)
    assert asked == [4, 4, 4, 3]


def test_one_class_training_set_is_refused() -> None:
    train = _split(0, "TRAINING")
    train.label[:] = 1
    with pytest.raises(InputError, match="hold no leaks"):
        run_baseline("mfcc-rf", train, _split(1, "VALIDATION"), _split(2, "TESTING"),
                     positive=[0], seed=0)


def test_classifiers_carry_the_papers_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    rf = make_classifier("mfcc-rf", seed=7)
    assert [n for n, _ in rf.steps] == ["scale", "model"]
    assert rf.get_params()["model__n_estimators"] == 500
    assert rf.get_params()["model__min_samples_leaf"] == 16
    assert rf.get_params()["model__random_state"] == 7
    svm = make_classifier("mfcc-svm", seed=7).named_steps["model"]
    assert (svm.estimator.kernel, svm.estimator.C, svm.method) == ("rbf", 100, "sigmoid")
    fake = types.ModuleType("xgboost")
    fake.XGBClassifier = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xgboost", fake)
    xgb = make_classifier("mfcc-xgboost", seed=7).steps[1][1]
    assert (xgb.n_estimators, xgb.max_depth, xgb.learning_rate, xgb.random_state) == \
        (1000, 10, 0.1, 7)
    assert available("mfcc-xgboost") is None
    with pytest.raises(ConfigError, match="unknown baseline 'mfcc-knn'"):
        make_classifier("mfcc-knn", seed=0)


def test_xgboost_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)  # `import xgboost` now fails
    assert available("mfcc-xgboost") == XGBOOST_LINE
    assert all(available(name) is None for name in ("mfcc-rf", "mfcc-svm", "cnn-mel"))
    with pytest.raises(MissingExtra) as err:
        run_baseline("mfcc-xgboost", _split(0, "TRAINING"), _split(1, "VALIDATION"),
                     _split(2, "TESTING"), positive=[0], seed=0)
    assert str(err.value) == XGBOOST_LINE
    assert "mfcc-xgboost" in BASELINES
