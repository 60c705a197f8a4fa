"""The configurations of the leak correlator: locating (``leakhunter locate``) and the
generated pairs it is measured on (``leakhunter synth-pairs``).

Kept beside :mod:`.stages` (same rules: frozen, checked on construction, the only place
their defaults live) because the correlator is a stage of its own: it never touches a
model's features.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stages import MAX_SEED, check

WEIGHTINGS = ("plain", "phat", "scot", "ml")  # locate/correlation.py says what each does


@dataclass(frozen=True)
class LocateConfig:
    """How a pair of synchronised recordings is correlated and judged (`leakhunter locate`).

    The correlation window is the shortest power of two of samples at least
    ``window_spans`` times the largest possible delay (span / slowest wave speed), and at
    least ``min_window_s``; ``window_s`` fixes it instead."""

    weighting: str = "scot"  # plain, phat, scot, ml
    window_s: float | None = None  # None: from the span and the wave speed
    window_spans: float = 4.0  # window >= this many largest delays (at least 3)
    min_window_s: float = 0.25
    band_hz: tuple[float, float] | None = None  # None: chosen from the coherence
    min_quality: float = 6.0  # peak quality below this: "no correlation"
    edge_share: float = 0.02  # a source within this share of the span of a sensor: "outside"
    confidence: float = 0.95  # of the interval
    max_offset_s: float = 1.0  # --layout: two sensors' recordings starting this close pair
    sample_rate: int | None = None  # None: the higher of the pair's rates
    workers: int = 0  # 0: one per CPU core (reading and resampling files)
    device: str = "auto"  # where the correlation runs: auto, cpu, cuda, cuda:N

    def __post_init__(self) -> None:
        check(self.weighting in WEIGHTINGS,
               f"weighting must be one of {', '.join(WEIGHTINGS)}, not {self.weighting!r}")
        check(self.window_s is None or 0 < self.window_s < float("inf"),
               "window_s must be a positive number of seconds")
        check(self.window_spans >= 3.0, "window_spans must be at least 3 (2: the wrap limit)")
        check(self.min_window_s > 0, "min_window_s must be positive")
        check(self.band_hz is None or (len(self.band_hz) == 2 and
                                        0 <= self.band_hz[0] < self.band_hz[1]),
               "band_hz must be (low, high) with 0 <= low < high")
        check(self.min_quality >= 0, "min_quality must be non-negative")
        check(0 <= self.edge_share < 0.5, "edge_share must be in [0, 0.5)")
        check(0 < self.confidence < 1, "confidence must be in (0, 1)")
        check(self.max_offset_s >= 0, "max_offset_s must be non-negative")
        check(self.sample_rate is None or self.sample_rate >= 1000,
               "sample_rate must be at least 1000 Hz")
        check(self.workers >= 0, "workers must be non-negative")


PAIR_MATERIALS = ("ductile iron", "cast iron", "steel", "asbestos cement", "pvc", "pe")


@dataclass(frozen=True)
class PairSynthConfig:
    """Generated sensor pairs with a known leak position (`leakhunter synth-pairs`)."""

    count: int = 100  # pairs
    seed: int = 0
    sample_rate: int = 8192
    duration_s: float = 20.0
    materials: tuple[str, ...] = PAIR_MATERIALS  # drawn uniformly
    span_m: tuple[float, float] = (40.0, 500.0)  # sensor spacing, drawn uniformly
    snr_db: tuple[float, float] = (-12.0, 6.0)  # per sensor: leak noise re sensor noise
    no_leak_share: float = 0.2  # pairs without a leak
    interference_share: float = 0.5  # pairs with common-mode noise from beyond one end
    interference_db: tuple[float, float] = (-10.0, 0.0)  # at the nearer sensor, re the leak there

    def __post_init__(self) -> None:
        check(self.count >= 1, "count must be at least 1")
        check(0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]")
        check(self.sample_rate >= 1000, "sample_rate must be at least 1000 Hz")
        check(self.duration_s > 0, "duration must be positive")
        check(len(self.materials) >= 1, "need at least one material")
        for name in ("span_m", "snr_db", "interference_db"):
            check(len(getattr(self, name)) == 2, f"{name} must be two numbers: low, high")
        check(0 < self.span_m[0] <= self.span_m[1], "span_m must be 0 < low <= high")
        check(self.snr_db[0] <= self.snr_db[1], "snr_db must be low <= high")
        check(0.0 <= self.no_leak_share <= 1.0, "no_leak_share must be in [0, 1]")
        check(0.0 <= self.interference_share <= 1.0, "interference_share must be in [0, 1]")
        check(self.interference_db[0] <= self.interference_db[1],
               "interference_db must be low <= high")
