"""The stage configurations: one frozen dataclass per stage, and the only place defaults
live.

Each dataclass checks its own values on construction (``__post_init__``) and raises
:class:`~leakhunter.errors.ConfigError` naming the setting, so no stage ever sees an
inconsistent configuration. Reading and writing them is :mod:`.serial`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError

SPLITS = ("TRAINING", "VALIDATION", "TESTING")
"""Split names, in order; also the folder names of an already-split input."""

BINARY_LABELS = ("LEAK", "NOLEAK")
MULTICLASS_LABELS = ("BACKGROUND", "CRACK", "LEAK", "NORMAL", "UNCLASSIFIED")
MAX_SEED = 2**32 - 1  # seeds are 0 .. MAX_SEED: what NumPy's and scikit-learn's take


@dataclass(frozen=True)
class FeatureConfig:
    """The log-mel front-end (two-stage temporal segmentation, Ma et al. 2025).

    A recording at ``sample_rate`` Hz is cut into long segments of ``segment_s`` seconds
    overlapping by ``segment_overlap``; each long segment is framed into ``n_fft``-point
    Hann-windowed frames overlapping by ``frame_overlap`` (no centre padding), and each frame
    becomes ``n_mels`` log-power mel bands (dB). One long segment is one model input of shape
    ``[n_mels, frames_per_segment]``.
    """

    sample_rate: int = 8192
    segment_s: float = 0.25
    segment_overlap: float = 0.5
    n_fft: int = 512
    frame_overlap: float = 0.5
    n_mels: int = 32
    fmin: float = 0.0
    fmax: float | None = None  # None: the Nyquist frequency
    top_db: float | None = 80.0  # per-segment dynamic range floor, as librosa's power_to_db

    def __post_init__(self) -> None:
        check(self.sample_rate > 0, "sample_rate must be positive")
        check(0.0 <= self.segment_overlap < 1.0, "segment_overlap must be in [0, 1)")
        check(0.0 <= self.frame_overlap < 1.0, "frame_overlap must be in [0, 1)")
        check(self.n_fft >= 8, "n_fft must be at least 8")
        check(self.n_mels >= 1, "n_mels must be at least 1")
        check(self.segment_samples >= self.n_fft,
               f"a long segment ({self.segment_samples} samples) is shorter than one "
               f"frame (n_fft={self.n_fft})")
        check(0.0 <= self.fmin < self.max_frequency <= self.sample_rate / 2,
               "need 0 <= fmin < fmax <= sample_rate / 2")
        check(self.top_db is None or self.top_db > 0, "top_db must be positive or None")

    @property
    def segment_samples(self) -> int:
        """Samples in one long segment."""
        return int(round(self.segment_s * self.sample_rate))

    @property
    def segment_hop(self) -> int:
        """Samples between the starts of two long segments."""
        return max(1, int(round(self.segment_samples * (1.0 - self.segment_overlap))))

    @property
    def frame_hop(self) -> int:
        """Samples between the starts of two STFT frames."""
        return max(1, int(round(self.n_fft * (1.0 - self.frame_overlap))))

    @property
    def frames_per_segment(self) -> int:
        """STFT frames in one long segment: the model input's width."""
        return 1 + (self.segment_samples - self.n_fft) // self.frame_hop

    @property
    def max_frequency(self) -> float:
        return self.sample_rate / 2 if self.fmax is None else float(self.fmax)

    def n_segments(self, n_samples: int) -> int:
        """Long segments in a recording of ``n_samples`` samples (0 when too short)."""
        if n_samples < self.segment_samples:
            return 0
        return 1 + (n_samples - self.segment_samples) // self.segment_hop


@dataclass(frozen=True)
class AudioConfig:
    """How recordings are read and judged usable before features are computed."""

    min_gain_db: float = 1.0  # recordings at or below this gain: sensor out of water
    detrend: bool = True  # remove DC offset and linear trend
    silence_rms: float = 1e-6  # RMS (full scale 1.0) at or below which a recording is silence
    # shorter recordings are skipped; longer ones shorter than a segment are zero-padded to
    # one segment (build and predict alike: the model keeps the dataset's value)
    min_duration_s: float = 0.05
    # a file holding less than its header declares: skipped (status "truncated"), or, when
    # allowed, the part there kept with a warning
    allow_truncated: bool = False

    def __post_init__(self) -> None:
        check(self.min_duration_s >= 0.0, "min_duration_s must be non-negative")
        check(self.silence_rms >= 0.0, "silence_rms must be non-negative")


@dataclass(frozen=True)
class SplitConfig:
    """How recordings are split when the input does not say."""

    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)  # TRAINING, VALIDATION, TESTING
    seed: int = 0
    group_by: str = "sensor"  # "sensor": a sensor's recordings stay together; "recording"

    def __post_init__(self) -> None:
        check(len(self.fractions) == 3 and all(f >= 0 for f in self.fractions),
               "fractions must be three non-negative numbers")
        check(all(f > 0 for f in self.fractions),
               "every split needs a positive fraction")
        check(math.isclose(sum(self.fractions), 1.0, abs_tol=1e-6), "fractions must sum to 1")
        check(self.group_by in ("sensor", "recording"), "group_by must be sensor or recording")
        check(0 <= self.seed <= MAX_SEED, f"split seed must be in [0, {MAX_SEED}]")


@dataclass(frozen=True)
class BuildConfig:
    """Everything `leakhunter build` needs besides its input and output paths."""

    feature: FeatureConfig = field(default_factory=FeatureConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    workers: int = 0  # 0: one per CPU core
    files_per_task: int = 8  # recordings handed to a worker at once
    device: str = "auto"  # where features are computed: auto, cpu, cuda, cuda:N
    strict: bool = False  # any skipped recording fails the build
    chunk_segments: int = 512  # HDF5 chunk length along the segment axis

    def __post_init__(self) -> None:
        check(self.workers >= 0, "workers must be at least 0")
        check(self.files_per_task >= 1, "files_per_task must be at least 1")
        check(self.chunk_segments >= 1, "chunk_segments must be at least 1")


@dataclass(frozen=True)
class SynthConfig:
    """Synthetic recordings for demos and tests (`leakhunter synth`)."""

    count: int = 100  # recordings per label
    seed: int = 0
    sample_rate: int = 4096
    duration_s: float = 10.0
    labels: tuple[str, ...] = BINARY_LABELS
    difficulty: float = 0.5  # 0: trivially separable, 1: leak signature near the noise floor
    sensors_per_label: int = 20
    out_of_water: int | None = None  # per label, at gain 1 dB; None: 2, at most count - 1
    interference: float = 0.35  # probability that a recording carries interference bursts
    site: str = "A"  # acoustic site (recordings/synth/sites.py): A = the default world, B = plastic

    def __post_init__(self) -> None:
        check(self.count >= 1, "count must be at least 1")
        if self.out_of_water is None:  # not given: every label keeps a usable recording
            object.__setattr__(self, "out_of_water", min(2, self.count - 1))
        check(0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]")
        check(self.sample_rate >= 1000, "sample_rate must be at least 1000 Hz")
        check(self.duration_s > 0, "duration must be positive")
        check(len(self.labels) >= 2, "need at least two labels")
        check(len(set(self.labels)) == len(self.labels), "labels must be distinct")
        check(0.0 <= self.difficulty <= 1.0, "difficulty must be in [0, 1]")
        check(self.sensors_per_label >= 1, "sensors_per_label must be at least 1")
        check(0 <= self.out_of_water <= self.count, "out_of_water must be in [0, count]")
        check(0.0 <= self.interference <= 1.0, "interference must be in [0, 1]")


POOLS = ("avg+max", "flatten")
AUGMENTS = ("gain", "tilt", "warp", "floor")  # train --augment: training/augment.py


@dataclass(frozen=True)
class ModelConfig:
    """The CNN: ``blocks`` conv blocks of width ``width * 2**i`` (two 3x3 conv + batch norm
    + ReLU, then 2x2 max-pooling), pooled (``pool``), a dense layer of ``dense`` units,
    dropout.

    ``pool``: ``avg+max`` takes each channel's mean and maximum over the last map, so the
    head does not know in which band a pattern was found (a leak heard lower in another
    pipe is the same pattern); ``flatten`` keeps the map's layout, as older models did."""

    width: int = 48
    blocks: int = 3
    dense: int = 256
    dropout: float = 0.3
    aux_weight: float = 0.5  # multi-class: weight of the auxiliary leak-vs-rest loss
    pool: str = "avg+max"  # avg+max | flatten

    def __post_init__(self) -> None:
        check(self.width >= 1 and self.blocks >= 1 and self.dense >= 1,
               "width, blocks and dense must be at least 1")
        check(self.pool in POOLS, f"pool must be one of {', '.join(POOLS)}")
        check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        check(self.aux_weight >= 0.0, "aux_weight must be non-negative")


@dataclass(frozen=True)
class TrainConfig:
    """`leakhunter train`: optimisation, data, precision, stopping."""

    model: ModelConfig = field(default_factory=ModelConfig)
    positive: tuple[str, ...] = ("LEAK",)  # classes that count as a leak
    epochs: int = 60
    batch_size: int = 0  # 0: automatic (256 on CPU, up to 16384 on CUDA)
    lr: float = 0.0  # 0: automatic (2e-3 at batch 256, scaled by sqrt(batch / 256))
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    loss: str = "ce"  # "ce" (class-weighted cross-entropy) or "focal"
    focal_gamma: float = 2.0
    class_weights: bool = True  # weight the loss by inverse class frequency
    balanced_sampler: bool = False  # draw batches class-balanced instead of weighting
    # site-robust augmentation of the training inputs (training/augment.py): gain, spectral
    # tilt, frequency warp, added noise floor; () = none
    augment: tuple[str, ...] = AUGMENTS
    spec_augment: bool = False  # time and frequency masking of training inputs
    mixup: float = 0.0  # mixup alpha; 0 = off
    patience: int = 15  # epochs without validation F1 improvement before stopping
    time_budget_s: float = 0.0  # stop after this many seconds of training; 0 = none
    vote_fraction: float = 0.5  # a recording is a leak when this share of segments are
    target_specificity: float | None = None  # threshold in best.pt: None = F1-best
    class_aggregate: str = "vote"  # multi-class: a recording's class by segment vote or mean
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: str = "auto"  # auto (see precision.resolve_amp), off, bf16, fp16
    compile: bool = False  # torch.compile the model
    preload: str = "auto"  # auto (when the split fits in 2 GiB), yes, no
    loader_workers: int = 2  # DataLoader processes reading batches when not preloaded
    log_every: int = 50  # steps between progress updates of the running loss

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "epochs must be at least 1")
        check(self.batch_size >= 0, "batch_size must be positive (or 0: automatic)")
        check(self.lr >= 0, "lr must be positive (or 0: automatic)")
        check(self.loss in ("ce", "focal"), "loss must be ce or focal")
        check(self.amp in ("auto", "off", "bf16", "fp16"), "amp must be auto/off/bf16/fp16")
        check(self.preload in ("auto", "yes", "no"), "preload must be auto, yes or no")
        check(0.0 < self.vote_fraction <= 1.0, "vote_fraction must be in (0, 1]")
        check(self.mixup >= 0.0, "mixup must be non-negative")
        for name in ("weight_decay", "warmup_epochs", "grad_clip", "focal_gamma", "time_budget_s"):
            check(getattr(self, name) >= 0, f"{name} must be non-negative")  # grad_clip 0: off
        check(self.loader_workers >= 0, "loader_workers must be at least 0")
        check(self.log_every >= 1, "log_every must be at least 1")
        check(0 <= self.seed <= MAX_SEED, f"training seed must be in [0, {MAX_SEED}]")
        check(all(a in AUGMENTS for a in self.augment),
               f"augment takes {', '.join(AUGMENTS)} (or none)")
        check(self.patience >= 1, "patience must be at least 1")
        check(len(self.positive) >= 1, "positive needs at least one class")
        check(self.target_specificity is None or 0.0 < self.target_specificity <= 1.0,
               "target_specificity must be in (0, 1]")
        check(self.class_aggregate in ("vote", "mean"), "class_aggregate must be vote/mean")


@dataclass(frozen=True)
class EvalConfig:
    """`leakhunter evaluate`: which split, how recordings are decided, what is written."""

    split: str = "TESTING"
    aggregate: str | None = None  # vote | mean | max; None: the model's
    vote_fraction: float | None = None  # None: the model's
    threshold: float | None = None  # what-if segment threshold; None: the model's
    target_specificity: float | None = None  # what-if: chosen on VALIDATION for this
    class_aggregate: str | None = None  # multi-class: vote | mean; None: the model's
    segments: bool = False  # also write segments.csv
    svg: bool = False  # also write the plots as SVG

    def __post_init__(self) -> None:
        _check_rule(self)


@dataclass(frozen=True)
class CalibrateConfig:
    """`leakhunter calibrate`: the new decision rule and the split it is chosen on."""

    split: str = "VALIDATION"  # where the threshold is chosen; never the split you report
    aggregate: str | None = None  # vote | mean | max; None: the parent model's
    vote_fraction: float | None = None  # None: the parent model's
    threshold: float | None = None  # fixed segment threshold; None: chosen on the split
    target_specificity: float | None = None  # the most sensitive threshold reaching this
    class_aggregate: str | None = None  # multi-class: vote | mean; None: the parent's

    def __post_init__(self) -> None:
        _check_rule(self)


@dataclass(frozen=True)
class TuneConfig:
    """`leakhunter tune`: the study, its budgets and its objective. Each trial trains with
    ``epochs`` and ``time_budget_s`` unless a train flag or ``[train]`` table fixes them."""

    trials: int = 20  # trials this process runs (each of several machines runs as many)
    timeout_s: float = 0.0  # stop starting trials after this many seconds; 0 = none
    epochs: int = 8  # per-trial epoch budget
    time_budget_s: float = 0.0  # per-trial training seconds; 0 = none
    study_name: str = "leakhunter"
    storage: str | None = None  # None: sqlite:///STUDY_DIR/study.db
    objective: str = "f1"  # f1 | f1,latency | f1,params
    target_specificity: float | None = None  # objective: sensitivity at this specificity
    sampler: str = "tpe"  # tpe | nsga2 | random
    startup_trials: int = 8  # random trials before TPE models the results
    pruner: str = "median"  # median | hyperband | none
    pruner_startup_trials: int = 4  # finished trials before the median pruner prunes
    pruner_warmup_epochs: int = 1  # epochs a trial always trains before it can be pruned
    seed: int = 0  # sampler seed; trial n draws from (seed, n), so reruns never repeat
    keep_trials: bool = False  # keep every trial's run directory, not just the best
    baseline: bool = True  # a new study's first trial trains the train defaults

    def __post_init__(self) -> None:
        check(self.trials >= 0, "trials must be non-negative")
        check(self.timeout_s >= 0, "timeout must be non-negative")
        check(self.epochs >= 1, "epochs must be at least 1")
        check(self.time_budget_s >= 0, "time_budget_s must be non-negative")
        check(0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]")
        check(bool(self.study_name.strip()), "study_name must not be empty")
        check(self.objective in ("f1", "f1,latency", "f1,params"),
               "objective must be f1, f1,latency or f1,params")
        check(self.target_specificity is None or 0.0 < self.target_specificity <= 1.0,
               "target_specificity must be in (0, 1]")
        check(self.sampler in ("tpe", "nsga2", "random"), "sampler must be tpe, nsga2 or "
                                                           "random")
        check(self.pruner in ("median", "hyperband", "none"),
               "pruner must be median, hyperband or none")
        check(self.startup_trials >= 0 and self.pruner_startup_trials >= 0
               and self.pruner_warmup_epochs >= 0, "startup and warm-up counts must be "
                                                   "non-negative")


@dataclass(frozen=True)
class LearnConfig:
    """`leakhunter learn`: the selection rule, replay, rounds, and each round's fine-tuning."""

    keep: float = 0.5  # share of each recording's segments kept: those agreeing most
    confidence: float = 0.8  # unlabelled: a recording's own decision is used from here on
    adapt: bool = True  # unlabelled: judge with normalisation re-estimated on the new site
    rounds: int = 2  # select -> fine-tune, repeated
    replay_share: float = 0.5  # share of a round's training segments from --replay
    epochs: int = 4  # fine-tuning epochs per round
    lr: float = 5e-4  # peak fine-tuning learning rate (a quarter of training's)
    batch_size: int = 0  # 0: automatic, as train
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    workers: int = 0  # processes reading NEW_INPUT; 0: one per CPU core
    split: SplitConfig = field(default_factory=SplitConfig)  # how NEW_INPUT is split

    def __post_init__(self) -> None:
        check(0.0 < self.keep <= 1.0, "keep must be in (0, 1]")
        check(0.0 <= self.confidence <= 1.0, "confidence must be in [0, 1]")
        check(self.rounds >= 1, "rounds must be at least 1")
        check(0.0 <= self.replay_share < 1.0, "replay_share must be in [0, 1)")
        check(self.epochs >= 1, "epochs must be at least 1")
        check(self.lr > 0, "lr must be positive")
        check(self.batch_size >= 0, "batch_size must be positive (or 0: automatic)")
        check(0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]")
        check(self.workers >= 0, "workers must be at least 0")


def _check_rule(cfg: EvalConfig | CalibrateConfig) -> None:
    """The decision-rule settings evaluate and calibrate share."""
    check(cfg.split in SPLITS, f"split must be one of {', '.join(SPLITS)}")
    check(cfg.aggregate in (None, "vote", "mean", "max"), "aggregate must be vote/mean/max")
    check(cfg.class_aggregate in (None, "vote", "mean"), "class_aggregate must be vote/mean")
    check(cfg.vote_fraction is None or 0.0 < cfg.vote_fraction <= 1.0,
           "vote_fraction must be in (0, 1]")
    check(cfg.threshold is None or 0.0 <= cfg.threshold <= 1.0, "threshold must be in [0, 1]")
    check(cfg.target_specificity is None or 0.0 < cfg.target_specificity <= 1.0,
           "target_specificity must be in (0, 1]")
    check(cfg.threshold is None or cfg.target_specificity is None,
           "give a threshold or a target specificity, not both")


def check(ok: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``ok`` (every config's checks)."""
    if not ok:
        raise ConfigError(message)
