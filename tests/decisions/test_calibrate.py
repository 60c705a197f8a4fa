"""Model files never change: train writes the threshold, evaluate only reads, calibrate
makes new files with their provenance; older model files keep working."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from leakhunter.cli import main
from leakhunter.config import EvalConfig
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.decisions.calibrate import meta_path
from leakhunter.decisions.evaluate import evaluate
from leakhunter.model import checkpoint
from leakhunter.model.card import load_model
from leakhunter.model.metrics import binary_scores, recording_scores
from leakhunter.model.scoring import predict_segments

from ..helpers.faults import one_line

SMALL = ["--width", "8", "--dense", "32", "--batch-size", "32"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def _without_threshold(src: Path, dst: Path, keep: dict | None = None) -> Path:
    """A model file as leakhunter wrote it before train chose thresholds: no rule, or the
    rule an older `evaluate` wrote back (``keep``)."""
    state = checkpoint.load(src, "model")
    for key in ("threshold", "threshold_method", "aggregate", "threshold_source"):
        state.pop(key, None)
    state.update(keep or {"threshold": None})
    checkpoint.save(dst, state)
    return dst


def test_train_writes_the_threshold_evaluate_would_choose(run: Path, dataset: Path,
                                                          tmp_path: Path) -> None:
    best = checkpoint.load(run / "best.pt", "model")
    meta = json.loads((run / "model_meta.json").read_text())
    assert best["threshold"] is not None and 0.0 <= best["threshold"] <= 1.0
    assert "F1 on VALIDATION" in best["threshold_method"]
    assert best["aggregate"] == "vote" and best["vote_fraction"] == 0.5
    src = best["threshold_source"]
    assert src["command"] == "train" and src["split"] == "VALIDATION"
    assert src["epoch"] == best["epoch"] and src["dataset"] == str(dataset.resolve())
    assert meta["threshold"] == best["threshold"] and meta["threshold_source"] == src
    assert f"{best['threshold']:.4f}" in (run / "train.log").read_text()
    # what `evaluate` chose on the same data when it still chose thresholds itself
    old = _without_threshold(run / "best.pt", tmp_path / "old.pt")
    report = evaluate(old, dataset, EvalConfig(), out_dir=tmp_path / "ev")
    assert report["decision"]["source"].startswith("chosen on VALIDATION")
    assert report["decision"]["threshold"] == best["threshold"]
    assert report["decision"]["how"] == best["threshold_method"]


def test_train_with_target_specificity(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["-q", "train", str(dataset), "--out", str(run), "--epochs", "1", *SMALL,
                 "--target-specificity", "0.9"]) == 0
    best = checkpoint.load(run / "best.pt", "model")
    assert best["threshold_method"].startswith("lowest threshold with specificity >= 0.9")
    assert best["threshold_source"]["target_specificity"] == 0.9
    # the chosen rule holds on VALIDATION: specificity reached
    model, meta = load_model(run / "best.pt")
    val = load_split(dataset / SPLIT_FILES["VALIDATION"])
    prob, _ = predict_segments(model, val, model.norm_mean.device)
    scores = recording_scores(val.file_index, prob, val.recordings, "vote", 0.5)
    truth = val.file_label == val.labels.index("LEAK")
    assert binary_scores(truth, scores >= best["threshold"])["specificity"] >= 0.9
    # the rule is part of the run: a resume may not change it
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2",
                 "--target-specificity", "0.5"]) == 1


def test_calibrate_writes_a_new_file_and_leaves_the_source_identical(
        run: Path, dataset: Path, recordings: Path, tmp_path: Path, capsys) -> None:
    source = run / "best.pt"
    before = {p: _sha256(p) for p in (source, run / "model_meta.json")}
    new = tmp_path / "models" / "strict.pt"
    assert main(["calibrate", str(source), str(dataset), "--out", str(new),
                 "--target-specificity", "1.0"]) == 0
    printed = capsys.readouterr().out
    assert {p: _sha256(p) for p in before} == before
    assert "left unchanged" in printed and before[source] in printed
    parent, child = checkpoint.load(source, "model"), checkpoint.load(new, "model")
    assert child["parent"]["sha256"] == before[source]
    assert child["parent"]["path"] == str(source.resolve())
    assert child["parent"]["rule"]["threshold"] == parent["threshold"]
    assert child["threshold_source"]["dataset"] == str(dataset.resolve())
    assert child["threshold_source"]["split"] == "VALIDATION"
    assert child["threshold_method"].startswith("lowest threshold with specificity >= 1")
    for name, tensor in parent["model"].items():  # the same model, only the rule differs
        assert child["model"][name].equal(tensor), name
    assert json.loads(meta_path(new).read_text())["parent"]["sha256"] == before[source]

    # predict and evaluate read the rule from whichever file they get
    report = evaluate(new, dataset, EvalConfig(split="VALIDATION"), out_dir=tmp_path / "ev")
    assert report["decision"]["source"] == "model"
    assert report["decision"]["threshold"] == child["threshold"]
    assert report["recordings"]["specificity"] == 1.0
    wav = sorted((recordings / "LEAK").glob("*.wav"))[-1]
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", str(new), str(wav), "--out", str(out), "--workers", "1"]) == 0
    with out.open() as fh:
        assert float(next(csv.DictReader(fh))["threshold"]) == pytest.approx(
            child["threshold"], rel=1e-5)
    from leakhunter.model.export import export_onnx
    card = export_onnx(new, tmp_path / "onnx" / "strict.onnx")
    assert card["threshold"] == child["threshold"] and card["source_sha256"] == _sha256(new)
    assert card["parent"]["sha256"] == before[source]

    # a calibration of a calibrated model keeps the lineage
    again = tmp_path / "models" / "fixed.pt"
    assert main(["-q", "calibrate", str(new), str(dataset), "--out", str(again),
                 "--threshold", "0.7", "--vote-fraction", "0.25"]) == 0
    grand = checkpoint.load(again, "model")
    assert grand["threshold"] == 0.7 and grand["vote_fraction"] == 0.25
    assert grand["threshold_method"] == "fixed by --threshold"
    assert grand["parent"]["sha256"] == _sha256(new)
    assert grand["parent"]["parent"]["sha256"] == before[source]


def test_calibrate_refuses_to_overwrite(run: Path, dataset: Path, tmp_path: Path,
                                        capsys) -> None:
    source = run / "best.pt"
    digest = _sha256(source)
    assert main(["calibrate", str(source), str(dataset), "--out", str(source)]) == 1
    assert "other than the source" in capsys.readouterr().err
    other = tmp_path / "x.pt"
    other.write_bytes(b"keep me")
    assert main(["calibrate", str(source), str(dataset), "--out", str(other)]) == 1
    assert "already exists" in capsys.readouterr().err and other.read_bytes() == b"keep me"
    assert main(["-q", "calibrate", str(source), str(dataset), "--out", str(other),
                 "--overwrite", "--threshold", "0.4"]) == 0
    assert checkpoint.load(other, "model")["threshold"] == 0.4
    assert _sha256(source) == digest


def test_calibrate_refuses_to_replace_another_models_metadata(run: Path, dataset: Path,
                                                               capsys) -> None:
    meta, out = run / "model_meta.json", run / "model.pt"  # train's, and model.pt's name
    before = {p: p.read_bytes() for p in (meta, run / "best.pt")}
    assert meta_path(out) == meta
    assert main(["calibrate", str(run / "best.pt"), str(dataset), "--out", str(out)]) == 1
    one_line(capsys.readouterr().err, f"{meta}: already exists (where --out {out} puts its "
                                      f"metadata); use --overwrite to replace it")
    assert {p: p.read_bytes() for p in before} == before and not out.exists()


def test_older_model_files_keep_working(run: Path, dataset: Path, recordings: Path,
                                        tmp_path: Path, capsys) -> None:
    wav = sorted((recordings / "LEAK").glob("*.wav"))[-1]
    # written back by an older `evaluate`: the rule is kept and used
    kept = {"threshold": 0.37, "threshold_method": "maximises per-recording F1 on "
            "VALIDATION (0.9000)", "aggregate": "vote", "vote_fraction": 0.5}
    evaluated = _without_threshold(run / "best.pt", tmp_path / "evaluated.pt", kept)
    digest = _sha256(evaluated)
    report = evaluate(evaluated, dataset, EvalConfig(), out_dir=tmp_path / "a")
    assert report["decision"]["threshold"] == 0.37 and report["decision"]["source"] == "model"
    assert main(["-q", "predict", str(evaluated), str(wav), "--out",
                 str(tmp_path / "a.csv"), "--workers", "1"]) == 0
    with (tmp_path / "a.csv").open() as fh:
        assert float(next(csv.DictReader(fh))["threshold"]) == 0.37
    # never given a threshold: predict warns and uses 0.5; evaluate chooses one for its
    # report only, and says how to make a model with it
    bare = _without_threshold(run / "best.pt", tmp_path / "bare.pt")
    bare_digest = _sha256(bare)
    capsys.readouterr()
    assert main(["evaluate", str(bare), str(dataset), "--out", str(tmp_path / "b")]) == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert main(["-q", "predict", str(bare), str(wav), "--out", str(tmp_path / "b.csv"),
                 "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "carries no threshold" in captured.err and "using 0.5" in captured.err
    assert "calibrate" in captured.out + captured.err
    assert report["decision"]["what_if"] and report["decision"]["model_threshold"] is None
    with (tmp_path / "b.csv").open() as fh:
        assert float(next(csv.DictReader(fh))["threshold"]) == 0.5
    assert _sha256(evaluated) == digest and _sha256(bare) == bare_digest


def test_calibrate_without_a_rule_chooses_the_f1_best_on_its_split(run: Path, dataset: Path,
                                                                   tmp_path: Path) -> None:
    parent = checkpoint.load(run / "best.pt", "model")
    assert main(["-q", "calibrate", str(run / "best.pt"), str(dataset), "--out",
                 str(tmp_path / "same.pt")]) == 0
    same = checkpoint.load(tmp_path / "same.pt", "model")
    # chosen again on VALIDATION, as train chose it: the same threshold, now with provenance
    assert same["threshold"] == parent["threshold"]
    assert same["threshold_source"]["split"] == "VALIDATION"
    assert same["threshold_method"].startswith("maximises per-recording F1 on VALIDATION")
    assert main(["-q", "calibrate", str(run / "best.pt"), str(dataset), "--out",
                 str(tmp_path / "site.pt"), "--split", "testing"]) == 0
    site = checkpoint.load(tmp_path / "site.pt", "model")
    assert site["threshold_source"]["split"] == "TESTING"
    assert site["threshold_method"].startswith("maximises per-recording F1 on TESTING")
