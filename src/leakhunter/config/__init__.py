"""Configuration: one frozen dataclass per stage, and the only place defaults live.

Every artifact (dataset attributes, ``config.json``, later checkpoints and reports) carries
the configuration that made it, serialised with :func:`to_dict` and read back with
:func:`from_dict`. CLI flags and ``--config FILE.toml`` only ever override these defaults.

What lives where:

- :mod:`.stages`: the dataclasses (``FeatureConfig`` ... ``LearnConfig``), their defaults and
  checks, and the fixed names :data:`SPLITS`, :data:`BINARY_LABELS`,
  :data:`MULTICLASS_LABELS`, :data:`MAX_SEED`;
- :mod:`.deliver`: ``ReportConfig`` and ``DemoConfig``, the survey report's and the demo's;
- :mod:`.locate`: ``LocateConfig`` and ``PairSynthConfig``, the leak correlator's;
- :mod:`.study`: ``StudyConfig``, the paper's experiments (``leakhunter study``);
- :mod:`.serial`: :func:`to_dict`, :func:`to_json`, :func:`from_dict` and :func:`load_toml`.

Import from here (``from ..config import TrainConfig, from_dict``), not from the submodules.
"""

from __future__ import annotations

from .deliver import DemoConfig, ReportConfig
from .locate import WEIGHTINGS, LocateConfig, PairSynthConfig
from .serial import from_dict, load_toml, to_dict, to_json, toml_value
from .stages import (
    AUGMENTS,
    BINARY_LABELS,
    MAX_SEED,
    MULTICLASS_LABELS,
    POOLS,
    SPLITS,
    AudioConfig,
    BuildConfig,
    CalibrateConfig,
    EvalConfig,
    FeatureConfig,
    LearnConfig,
    ModelConfig,
    SplitConfig,
    SynthConfig,
    TrainConfig,
    TuneConfig,
)
from .study import PAPER_CHOICE, PAPER_LONG_S, PAPER_SHORT, STUDY_MODELS, StudyConfig

__all__ = [
    "AUGMENTS", "BINARY_LABELS", "MAX_SEED", "MULTICLASS_LABELS", "PAPER_CHOICE", "PAPER_LONG_S",
    "PAPER_SHORT", "POOLS", "SPLITS", "STUDY_MODELS", "WEIGHTINGS",
    "AudioConfig", "BuildConfig", "CalibrateConfig", "DemoConfig", "EvalConfig",
    "FeatureConfig", "LearnConfig", "LocateConfig", "ModelConfig", "PairSynthConfig",
    "ReportConfig", "SplitConfig", "StudyConfig", "SynthConfig", "TrainConfig", "TuneConfig",
    "from_dict", "load_toml", "to_dict", "to_json", "toml_value",
]
