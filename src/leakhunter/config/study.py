"""The configuration of ``leakhunter study``: the paper's experiments on a user's recordings
(Ma et al. 2025, Fig. 3 and Table 2) with sensor-grouped k-fold cross-validation.

Same rules as :mod:`.stages`: frozen, checked on construction, the only place its defaults
live; the build and training settings of every run are a :class:`BuildConfig` and a
:class:`TrainConfig`, each run's long segment and short frame put into the former.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .stages import MAX_SEED, BuildConfig, TrainConfig, check

STUDY_MODELS = ("cnn-mel", "cnn-raw", "mfcc-rf", "mfcc-svm", "mfcc-xgboost")
PAPER_LONG_S = (0.125, 0.25, 0.5, 0.75, 1.0)  # Fig. 3: long segments, seconds
PAPER_SHORT = (64, 128, 256, 512, 1024)  # Fig. 3: short frames, points
PAPER_CHOICE = (0.25, 512)  # the paper's chosen long segment (s) and short frame (points)


@dataclass(frozen=True)
class StudyConfig:
    """`leakhunter study`: which configurations and models, how the recordings are folded,
    and how each run is built and trained."""

    long_s: tuple[float, ...] = PAPER_LONG_S
    short_points: tuple[int, ...] = PAPER_SHORT
    models: tuple[str, ...] = ("cnn-mel",)
    folds: int = 5  # sensor-grouped, label-stratified; 1: the fixed split of build.split
    seed: int = 0  # the folds' shuffle (the runs' training seed is train.seed)
    validation_share: float = 0.2  # of each fold's training sensors: early stopping, threshold
    storage: str | None = None  # an Optuna database URL shared by several machines; None: local
    study_name: str = "leakhunter-study"  # the study's name in that database
    jobs: int = 1  # runs at once on this machine (GPUs in turn, CPU cores shared out)
    build: BuildConfig = field(default_factory=BuildConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check(len(self.long_s) >= 1 and all(x > 0 for x in self.long_s),
               "long_s needs positive durations in seconds")
        check(len(self.short_points) >= 1 and all(n >= 8 for n in self.short_points),
               "short_points needs frame lengths of at least 8 points")
        check(len(set(self.long_s)) == len(self.long_s), "long_s repeats a value")
        check(len(set(self.short_points)) == len(self.short_points),
               "short_points repeats a value")
        check(len(self.models) >= 1 and all(m in STUDY_MODELS for m in self.models),
               f"models take {', '.join(STUDY_MODELS)}")
        check(len(set(self.models)) == len(self.models), "models repeats a model")
        check(self.folds >= 1, "folds must be at least 1 (1: the fixed split)")
        check(0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]")
        check(0.0 < self.validation_share < 0.5, "validation_share must be in (0, 0.5)")
        check(self.jobs >= 1, "jobs must be at least 1")
