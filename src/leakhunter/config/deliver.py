"""The configurations of what delivers a model's decisions, or the whole chain at once: the
survey report (``leakhunter report``, ``predict --report/--sensors``) and the demo
(``leakhunter demo``), as :mod:`leakhunter.cli.deliver` holds their commands.

Same rules as :mod:`.stages`: frozen, checked on construction, the only place their
defaults live.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stages import MAX_SEED, check


@dataclass(frozen=True)
class DemoConfig:
    """`leakhunter demo`: the size of the generated data and of the training run."""

    count: int = 200  # recordings per label for training data
    fresh: int = 40  # fresh recordings per label for prediction
    duration_s: float = 10.0
    epochs: int = 10
    time_budget_s: float = 150.0  # keeps the demo within minutes on a slow CPU
    target_specificity: float = 0.95  # the calibrate step's false-alarm budget
    seed: int = 0  # the fresh recordings take seed + 1000 (wrapping at MAX_SEED)

    def __post_init__(self) -> None:
        check(self.count >= 1, "count must be at least 1")
        check(self.fresh >= 1, "fresh must be at least 1")
        check(self.duration_s > 0, "duration must be positive")
        check(self.epochs >= 1, "epochs must be at least 1")
        check(self.time_budget_s >= 0, "time_budget_s must be non-negative")
        check(0.0 < self.target_specificity <= 1.0, "target_specificity must be in (0, 1]")
        check(0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]")


@dataclass(frozen=True)
class ReportConfig:
    """`leakhunter report` (and `predict --report/--sensors`): what the survey report embeds
    and how sensors are judged over nights."""

    audio: str = "flagged"  # embed audio for: flagged (called leaks), all, none
    spectrograms: str = "flagged"  # embed spectrogram images for: flagged, all, none
    audio_cap_mb: float = 40.0  # total embedded audio; the loudest calls come first
    clip_s: float = 30.0  # longest clip embedded per recording (around its peak segment)
    nights: int = 7  # a sensor's persistence counts its last this many recorded nights
    min_leak_nights: int = 2  # ... and alerts when at least this many were called leaks
    workers: int = 0  # processes encoding media; 0 = one per CPU core

    def __post_init__(self) -> None:
        for name in ("audio", "spectrograms"):
            check(getattr(self, name) in ("flagged", "all", "none"),
                   f"{name} must be flagged, all or none")
        check(self.audio_cap_mb >= 0, "audio_cap_mb must be at least 0")
        check(self.clip_s > 0, "clip_s must be positive")
        check(self.nights >= 1, "nights must be at least 1")
        check(1 <= self.min_leak_nights <= self.nights,
               "min_leak_nights must be between 1 and nights")
        check(self.workers >= 0, "workers must be at least 0")
