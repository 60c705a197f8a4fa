"""Configuration (leakhunter.config): the stage dataclasses, their checks, and their
serialisation into every artifact (to_dict / from_dict / load_toml)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from leakhunter.config import (
    SPLITS,
    AudioConfig,
    BuildConfig,
    CalibrateConfig,
    DemoConfig,
    EvalConfig,
    FeatureConfig,
    LearnConfig,
    ModelConfig,
    ReportConfig,
    SplitConfig,
    SynthConfig,
    TrainConfig,
    TuneConfig,
    from_dict,
    load_toml,
    to_dict,
    to_json,
)
from leakhunter.errors import ConfigError

STAGES = (FeatureConfig, AudioConfig, SplitConfig, BuildConfig, SynthConfig, ModelConfig,
          TrainConfig, EvalConfig, CalibrateConfig, TuneConfig, LearnConfig, DemoConfig,
          ReportConfig)


@pytest.mark.parametrize("cls", STAGES, ids=lambda c: c.__name__)
def test_every_stage_round_trips_through_json(cls: type) -> None:
    cfg = cls()
    data = json.loads(to_json(cfg))
    assert data == to_dict(cfg)
    assert from_dict(cls, data) == cfg
    assert dataclasses.is_dataclass(cfg) and cls.__dataclass_params__.frozen


def test_the_paper_settings_are_the_feature_defaults() -> None:
    f = FeatureConfig()
    assert (f.sample_rate, f.segment_s, f.segment_overlap, f.n_fft, f.frame_overlap) == \
        (8192, 0.25, 0.5, 512, 0.5)
    assert (f.segment_samples, f.segment_hop, f.frame_hop, f.frames_per_segment) == \
        (2048, 1024, 256, 7)
    assert f.max_frequency == 4096 and FeatureConfig(fmax=2000).max_frequency == 2000
    assert [f.n_segments(n) for n in (0, 2047, 2048, 3071, 3072, 8192 * 10)] == \
        [0, 0, 1, 1, 2, 79]
    assert SPLITS == ("TRAINING", "VALIDATION", "TESTING")


def test_nested_settings_and_tuples_come_back_as_they_were() -> None:
    cfg = BuildConfig(feature=FeatureConfig(n_mels=16, fmax=None),
                      split=SplitConfig(fractions=(0.5, 0.25, 0.25), group_by="recording"))
    data = to_dict(cfg)
    assert data["split"]["fractions"] == [0.5, 0.25, 0.25]  # JSON has no tuples
    back = from_dict(BuildConfig, data)
    assert back == cfg and back.split.fractions == (0.5, 0.25, 0.25)


def test_missing_keys_take_defaults_and_unknown_keys_are_refused() -> None:
    assert from_dict(TrainConfig, {"epochs": 3}) == TrainConfig(epochs=3)
    assert from_dict(TrainConfig, {"lr": 1}).lr == 1.0  # an int where a float goes
    with pytest.raises(ConfigError, match="unknown setting"):
        from_dict(TrainConfig, {"epochz": 3})
    with pytest.raises(ConfigError, match=r"TrainConfig.epochs: expected int"):
        from_dict(TrainConfig, {"epochs": "many"})
    with pytest.raises(ConfigError, match="expected a table"):
        from_dict(TrainConfig, ["epochs", 3])
    with pytest.raises(ConfigError, match="expected a list"):
        from_dict(SplitConfig, {"fractions": 0.5})


@pytest.mark.parametrize("make, message", [
    (lambda: FeatureConfig(n_fft=4096), "shorter than one frame"),
    (lambda: FeatureConfig(fmin=5000), "fmin < fmax"),
    (lambda: FeatureConfig(segment_overlap=1.0), "segment_overlap"),
    (lambda: AudioConfig(min_duration_s=-1), "min_duration_s"),
    (lambda: SplitConfig(fractions=(0.7, 0.3, 0.0)), "positive fraction"),
    (lambda: SplitConfig(fractions=(0.5, 0.2, 0.2)), "sum to 1"),
    (lambda: TrainConfig(amp="fp8"), "amp"),
    (lambda: TrainConfig(vote_fraction=0.0), "vote_fraction"),
    (lambda: EvalConfig(split="TRAIN"), "split must be one of"),
    (lambda: CalibrateConfig(threshold=0.2, target_specificity=0.9), "not both"),
    (lambda: EvalConfig(threshold=1.5), "threshold must be in"),
    (lambda: TuneConfig(objective="speed"), "objective"),
    (lambda: LearnConfig(keep=0.0), "keep"),
    (lambda: ReportConfig(min_leak_nights=9), "min_leak_nights"),
    (lambda: SynthConfig(labels=("LEAK", "LEAK")), "distinct"),
    (lambda: SynthConfig(count=1, out_of_water=2), "out_of_water must be in"),
    (lambda: SplitConfig(seed=2**32), "split seed must be in"),
    (lambda: BuildConfig(chunk_segments=0), "chunk_segments must be at least 1"),
    (lambda: TrainConfig(grad_clip=-1.0), "grad_clip must be non-negative"),
    (lambda: TuneConfig(seed=-1), "seed must be in"),
    (lambda: LearnConfig(workers=-1), "workers must be at least 0"),
    (lambda: DemoConfig(fresh=0), "fresh must be at least 1"),
])
def test_bad_values_are_refused_with_the_setting_named(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_a_threshold_of_zero_is_a_valid_setting() -> None:
    assert CalibrateConfig(threshold=0.0).threshold == 0.0
    assert from_dict(EvalConfig, {"threshold": 0.0}).threshold == 0.0


def test_the_ends_of_the_ranges_are_valid_settings() -> None:
    assert TrainConfig(grad_clip=0.0, warmup_epochs=0.0, seed=2**32 - 1).grad_clip == 0.0
    assert SplitConfig(seed=2**32 - 1).seed == DemoConfig(seed=2**32 - 1).seed == 2**32 - 1


def test_toml_files(tmp_path: Path) -> None:
    good = tmp_path / "train.toml"
    good.write_text('epochs = 5\n[model]\nwidth = 16\n')
    assert from_dict(TrainConfig, load_toml(good)) == TrainConfig(
        epochs=5, model=ModelConfig(width=16))
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 5\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_toml(tmp_path / "missing.toml")
