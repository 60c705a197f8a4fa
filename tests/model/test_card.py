"""The model card (leakhunter.model.card): the one reader of a model file's metadata and
decision rule, and the rule applied alike by evaluate, calibrate, predict (torch and ONNX),
report and learn."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from leakhunter.config import AudioConfig, CalibrateConfig, EvalConfig, FeatureConfig, to_dict
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.decisions.calibrate import calibrate
from leakhunter.decisions.evaluate import evaluate
from leakhunter.decisions.predict import Predictor
from leakhunter.decisions.predictions_file import write_predictions, write_predictions_info
from leakhunter.errors import ConfigError, DatasetError
from leakhunter.model import checkpoint
from leakhunter.model.card import (
    DEFAULT_THRESHOLD,
    ModelCard,
    Rule,
    load_model,
    onnx_card,
    read_card,
)
from leakhunter.model.checkpoint import CheckpointError
from leakhunter.model.export import OnnxScorer, export_onnx
from leakhunter.report import build_report

from ..helpers.survey import page_data

OLD = {"class_names": ["LEAK", "NOLEAK"], "positive": ["LEAK"],
       "feature_config": to_dict(FeatureConfig())}
"""The least a model file holds: one written before thresholds, rules and audio settings."""


def test_rule_replaces_only_the_values_given() -> None:
    rule = Rule(threshold=0.3, vote_fraction=0.6, aggregate="mean")
    assert rule.replace(threshold=None, vote_fraction=None, aggregate=None) == rule
    assert rule.replace(threshold=0.0).threshold == 0.0  # 0.0 is a threshold
    assert rule.replace(class_aggregate="mean", min_duration_s=0.0) == dataclasses.replace(
        rule, class_aggregate="mean", min_duration_s=0.0)
    for bad in ({"aggregate": "median"}, {"class_aggregate": "max"}, {"vote_fraction": 0.0}):
        with pytest.raises(ConfigError):
            Rule(**bad)


def test_defaults_are_stated_once_for_a_model_without_a_rule() -> None:
    card = ModelCard.from_meta(OLD, "old.pt")
    assert card.rule == Rule() and card.rule.threshold == DEFAULT_THRESHOLD
    assert card.stored_threshold is None and card.threshold_method is None
    assert card.audio == AudioConfig() and card.rule.min_duration_s == AudioConfig().min_duration_s
    assert card.familiarity is None and card.model_config is None
    assert card.positive_indices == [0] and card.task == "binary" and not card.multiclass
    assert card.stored_rule() == {"threshold": None, "threshold_method": None,
                                  "aggregate": None, "vote_fraction": None,
                                  "class_aggregate": None}


def test_a_stored_rule_is_read_as_stored() -> None:
    meta = {**OLD, "threshold": 0.0, "vote_fraction": 0.25, "aggregate": "max",
            "class_aggregate": "mean", "audio_config": {"min_duration_s": 0.5}}
    card = ModelCard.from_meta(meta)
    assert card.rule == Rule(0.0, 0.25, "max", "mean", 0.5) and card.stored_threshold == 0.0


def test_an_incomplete_or_invalid_card_is_refused() -> None:
    with pytest.raises(CheckpointError, match="no positive"):
        ModelCard.from_meta({k: v for k, v in OLD.items() if k != "positive"}, "m.pt")
    with pytest.raises(CheckpointError, match="invalid"):
        ModelCard.from_meta({**OLD, "aggregate": "median"}, "m.pt")


def test_fits_is_the_one_split_check(trained_run: Path, dataset: Path,
                                     multiclass_run) -> None:
    card = read_card(trained_run / "best.pt")
    split = load_split(dataset / SPLIT_FILES["VALIDATION"])
    assert card.fits(split) is split
    other = load_split(multiclass_run[1] / SPLIT_FILES["VALIDATION"])
    with pytest.raises(DatasetError, match="--replay classes BACKGROUND"):
        card.fits(other, "--replay")
    with pytest.raises(DatasetError, match="different feature config"):
        dataclasses.replace(card, feature=FeatureConfig(n_mels=16)).fits(split)


def test_the_onnx_card_carries_the_whole_rule() -> None:
    meta = {**OLD, "threshold": 0.0, "threshold_method": "fixed", "aggregate": "mean",
            "vote_fraction": 0.3, "class_aggregate": "mean",
            "audio_config": to_dict(AudioConfig(min_duration_s=0.2)), "epoch": 4}
    card = ModelCard.from_meta(meta)
    written = onnx_card(card, opset=18)
    assert {k: written[k] for k in ("threshold", "aggregate", "vote_fraction",
                                    "class_aggregate", "min_duration_s")} == {
        "threshold": 0.0, "aggregate": "mean", "vote_fraction": 0.3,
        "class_aggregate": "mean", "min_duration_s": 0.2}
    back = ModelCard.from_onnx_card(json.loads(json.dumps(written)))
    assert back.rule == card.rule and back.stored_threshold == 0.0
    assert back.classes == card.classes and back.audio == card.audio
    assert back.meta["epoch"] == 4


def test_threshold_zero_is_applied_by_every_reader(trained_run: Path, dataset: Path,
                                                   recordings: Path, tmp_path: Path) -> None:
    """A model whose leak probabilities are all far below 0.5, calibrated with ``--threshold
    0``, calls every judged recording a leak: evaluate, predict with torch and with ONNX,
    and the survey report all apply 0.0. A reader of ``threshold or 0.5`` applies 0.5 and
    calls every one of them no leak."""
    state = checkpoint.load(trained_run / "best.pt", "model")
    bias = state["model"]["head.5.bias"]  # the output layer: LEAK (0) all but impossible
    bias[0], bias[1] = -30.0, 30.0
    quiet = tmp_path / "quiet.pt"
    checkpoint.save(quiet, state)
    zero = tmp_path / "zero.pt"
    calibrate(quiet, dataset, zero, CalibrateConfig(threshold=0.0), device="cpu")
    assert checkpoint.load(zero, "model")["threshold"] == 0.0
    model, card = load_model(zero)
    assert card.rule.threshold == 0.0 and card.stored_threshold == 0.0

    report = evaluate(zero, dataset, EvalConfig(), out_dir=tmp_path / "ev", device="cpu")
    assert report["decision"]["threshold"] == 0.0 and report["decision"]["source"] == "model"
    assert report["recordings"]["tn"] == report["recordings"]["fn"] == 0  # all called leaks

    predictor = Predictor(zero, workers=1, device="cpu")
    assert predictor.rule.threshold == 0.0 and predictor.identity()["threshold"] == 0.0
    records = list(predictor.predict([recordings]))
    judged = [r for r in records if r["decision"]]
    assert judged and all(r["decision"] == "LEAK" and r["threshold"] == 0.0 for r in judged)
    half = Predictor(zero, workers=1, device="cpu", threshold=0.5)  # what `or 0.5` gave
    assert all(r["decision"] == "NO LEAK" for r in half.predict([recordings])
               if r["decision"])

    onnx = tmp_path / "export" / "zero.onnx"
    written = export_onnx(zero, onnx, device="cpu")
    assert written["threshold"] == 0.0 and written["class_aggregate"] == "vote"
    assert OnnxScorer(onnx).card.rule == card.rule
    by_onnx = list(Predictor(zero, onnx=onnx, workers=1).predict([recordings]))
    assert [r["decision"] for r in by_onnx] == [r["decision"] for r in records]
    assert all(r["threshold"] == 0.0 for r in by_onnx)

    out = tmp_path / "predictions.csv"
    write_predictions(records, out, "csv", predictor.classes)
    write_predictions_info(out, predictor)
    build_report(out, tmp_path / "report.html")
    data = page_data(tmp_path / "report.html")
    assert data["decision"]["threshold"] == 0.0 and data["model"]["threshold"] == 0.0
    assert data["summary"]["leaks"] == len(judged)


def test_an_older_model_file_without_a_threshold_uses_the_stated_default(
        trained_run: Path, tmp_path: Path, caplog) -> None:
    state = checkpoint.load(trained_run / "best.pt", "model")
    for key in ("threshold", "threshold_method", "aggregate", "vote_fraction",
                "class_aggregate"):
        state.pop(key)
    old = tmp_path / "old.pt"
    checkpoint.save(old, state)
    card = read_card(old)
    assert card.stored_threshold is None and card.rule == Rule(
        min_duration_s=card.audio.min_duration_s)
    predictor = Predictor(old, workers=1, device="cpu")
    assert predictor.rule.threshold == DEFAULT_THRESHOLD
    assert "carries no threshold" in caplog.text and f"using {DEFAULT_THRESHOLD:g}" in caplog.text


def test_a_model_written_before_the_pooled_head_loads_as_it_was(trained_run: Path,
                                                               tmp_path: Path) -> None:
    """A model_config without ``pool`` is a flattened head: its weights load, and it scores
    as the model it was (here: a flattened model saved the way older versions saved it)."""
    import torch

    from leakhunter.config import ModelConfig
    from leakhunter.model.cnn import LeakCNN

    state = checkpoint.load(trained_run / "best.pt", "model")
    card = ModelCard.from_meta(state)
    assert card.model_config.pool == "avg+max"  # trained now: pooled
    flat_cfg = dataclasses.replace(card.model_config, pool="flatten")
    torch.manual_seed(0)
    flat = LeakCNN(card.feature.n_mels, card.feature.frames_per_segment, 2, [0], flat_cfg)
    old_config = {k: v for k, v in to_dict(flat_cfg).items() if k != "pool"}
    state.update(model=flat.state_dict(), model_config=old_config)
    state.pop("format_version")
    checkpoint.save(tmp_path / "old.pt", state)
    loaded, old_card = load_model(tmp_path / "old.pt", torch.device("cpu"))
    assert old_card.model_config == flat_cfg and not loaded.pooled
    x = torch.randn(3, card.feature.n_mels, card.feature.frames_per_segment)
    flat.eval()
    assert torch.equal(loaded(x), flat(x))
    assert ModelConfig().pool == "avg+max"
