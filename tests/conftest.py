"""Shared fixtures, built once per session and read-only: tiny synthetic recordings, a
dataset built from them, a run trained on it, a five-class run, and an input that fixes
its own splits with recordings shorter than one segment (``presplit``); and writable
copies of the recordings and of the run (per test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.config import SPLITS, BuildConfig, SynthConfig
from leakhunter.dataset.build import build_dataset
from leakhunter.recordings.synth.synth import synthesize

from .helpers.cuda import fake_cuda  # noqa: F401 (fixture)
from .helpers.samples import SHORT_FILE, TINY, TINY_FILE


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Label folders LEAK/ and NOLEAK/ of 12 two-second recordings each (4 sensors each,
    one out-of-water file per label). Read-only: copy it before changing anything."""
    root = tmp_path_factory.mktemp("synth") / "recordings"
    synthesize(root, TINY)
    return root


@pytest.fixture(scope="session")
def dataset(recordings: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder built from :func:`recordings` in-process. Read-only."""
    out = tmp_path_factory.mktemp("dataset")
    build_dataset(recordings, out, BuildConfig(workers=1))
    return out


@pytest.fixture
def recordings_copy(recordings: Path, tmp_path: Path) -> Path:
    """A private, writable copy of :func:`recordings`."""
    dst = tmp_path / "recordings"
    shutil.copytree(recordings, dst)
    return dst


@pytest.fixture(scope="session")
def presplit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TRAINING/VALIDATION/TESTING folders of LEAK/NOLEAK recordings, with the same sensors
    in every split, plus a 0.1 s and a 0.02 s leak recording in TESTING and a 0.1 s one in
    TRAINING (``SHORT_FILE`` and ``TINY_FILE`` of tests/helpers/samples.py): an input that
    fixes its own splits and shares sensors between them, with recordings shorter than one
    segment. Read-only."""
    root = tmp_path_factory.mktemp("presplit") / "in"
    for i, split in enumerate(SPLITS):
        synthesize(root / split, SynthConfig(count=4, duration_s=1.0, sensors_per_label=2,
                                             out_of_water=0, seed=10 + i))
    rng = np.random.default_rng(0)
    for split, name, seconds in (("TESTING", SHORT_FILE, 0.1), ("TESTING", TINY_FILE, 0.02),
                                 ("TRAINING", "S0903~R000003~20240101T000000~20.wav", 0.1)):
        wave = (0.1 * rng.standard_normal(int(seconds * 4096))).astype(np.float32)
        sf.write(root / split / "LEAK" / name, wave, 4096)
    return root


@pytest.fixture(scope="session")
def trained_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with a small model trained for two epochs on :func:`dataset`.
    Read-only: copy it before changing anything (train wrote the threshold into best.pt)."""
    from leakhunter.config import ModelConfig, TrainConfig
    from leakhunter.training.train import train

    run = tmp_path_factory.mktemp("run")
    # no augmentation: two epochs on this tiny set must already rank its recordings (the
    # decision-rule tests need a threshold that reaches their specificity); augmentation
    # has its own tests (tests/training/test_augment.py)
    train(dataset, run, TrainConfig(epochs=2, batch_size=32, augment=(),
                                    model=ModelConfig(width=8, dense=32)), overwrite=True)
    return run


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A private, writable copy of :func:`trained_run`."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


@pytest.fixture(scope="session")
def multiclass_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(recordings, dataset, run) of a tiny five-class task trained for one epoch with
    LEAK and CRACK as leaks. Read-only."""
    from leakhunter.cli import main
    from leakhunter.config import MULTICLASS_LABELS

    root = tmp_path_factory.mktemp("multiclass")
    rec, ds, run = root / "rec", root / "ds", root / "run"
    synthesize(rec, SynthConfig(count=8, duration_s=1.0, sensors_per_label=3,
                                labels=MULTICLASS_LABELS))
    assert main(["-q", "build", str(rec), "--out", str(ds), "--workers", "1"]) == 0
    assert main(["-q", "train", str(ds), "--out", str(run), "--epochs", "1", "--width", "8",
                 "--dense", "32", "--batch-size", "32", "--positive", "LEAK,CRACK"]) == 0
    return rec, ds, run
