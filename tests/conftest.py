"""Shared fixtures: tiny synthetic recordings and a dataset built from them (per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from leakhunter.config import BuildConfig, SynthConfig
from leakhunter.dataset.build import build_dataset
from leakhunter.synth import synthesize

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "real-hydrophone"

TINY = SynthConfig(count=12, duration_s=2.0, sensors_per_label=4, out_of_water=1, seed=7)


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


def real_files() -> list[Path]:
    return sorted(REAL_DIR.glob("*.wav")) if REAL_DIR.is_dir() else []


needs_real = pytest.mark.skipif(not real_files(), reason="shared/real-hydrophone not present")


@pytest.fixture(scope="session")
def trained_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with a small model trained for two epochs on :func:`dataset`.
    Read-only: copy it before evaluating (evaluate writes the threshold into best.pt)."""
    from leakhunter.config import ModelConfig, TrainConfig
    from leakhunter.train import train

    run = tmp_path_factory.mktemp("run")
    train(dataset, run, TrainConfig(epochs=2, batch_size=32,
                                    model=ModelConfig(width=8, dense=32)), overwrite=True)
    return run
