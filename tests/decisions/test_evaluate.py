"""`leakhunter evaluate`: the report, predictions and plots, whose rule decides (the model's
or a what-if), the test split never choosing the threshold, multiclass results against
scikit-learn, bad input, and write failures that keep the model (tests/helpers/faults.py).
The metrics themselves: tests/model/test_metrics.py."""

from __future__ import annotations

import csv
import errno
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn import metrics as skm

from leakhunter.cli import main
from leakhunter.config import EvalConfig
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.decisions import evaluate as evaluate_module
from leakhunter.decisions.evaluate import evaluate
from leakhunter.model import checkpoint
from leakhunter.runtime.amp import autocast, resolve_amp

from ..helpers.faults import REASON, fail_writes, one_line, temps


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def test_evaluate_writes_report_predictions_and_plots_with_the_models_rule(
        run: Path, dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run / "best.pt"), str(dataset), "--segments", "--svg"]) == 0
    out = capsys.readouterr().out
    assert "recordings" in out and "threshold" in out and "roc_auc" in out
    assert "what-if" not in out
    ev = run / "eval-testing"
    report = json.loads((ev / "report.json").read_text())
    with (ev / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == report["dataset"]["recordings"]
    assert set(rows[0]) == {"path", "sensor_id", "true_label", "leak_probability",
                            "vote_fraction", "score", "decision", "correct",
                            "familiarity", "status"}
    wrong = [r for r in rows if r["correct"] == "False"]
    assert len(wrong) == len(report["misclassified"])
    with (ev / "segments.csv").open() as fh:
        assert sum(1 for _ in fh) - 1 == report["dataset"]["segments"]
    for name in ("roc", "pr", "confusion", "threshold_sweep", "vote_fractions"):
        assert (ev / f"{name}.png").stat().st_size > 1000 and (ev / f"{name}.svg").exists()
    best = checkpoint.load(run / "best.pt", "model")
    meta = json.loads((run / "model_meta.json").read_text())
    d = report["decision"]
    assert best["threshold"] == meta["threshold"] == d["threshold"] == d["model_threshold"]
    assert d["source"] == "model" and d["what_if"] is False
    assert d["how"] == best["threshold_method"] and "VALIDATION" in d["how"]
    r = report["recordings"]
    assert r["tp"] + r["fn"] + r["fp"] + r["tn"] == report["dataset"]["recordings"]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("flags,source", [
    ([], "model"),
    (["--target-specificity", "0.9"], "chosen on VALIDATION"),
    (["--threshold", "0.3"], "--threshold"),
    (["--vote-fraction", "0.25"], "chosen on VALIDATION"),
    (["--aggregate", "mean"], "chosen on VALIDATION"),
])
def test_evaluate_leaves_the_model_files_byte_identical(
        run: Path, dataset: Path, tmp_path: Path, capsys, flags: list[str],
        source: str) -> None:
    before = {name: _sha256(run / name) for name in ("best.pt", "model_meta.json")}
    stamp = (run / "best.pt").stat().st_mtime_ns
    assert main(["evaluate", str(run / "best.pt"), str(dataset), "--out",
                 str(tmp_path / "ev"), *flags]) == 0
    assert {name: _sha256(run / name) for name in before} == before
    assert (run / "best.pt").stat().st_mtime_ns == stamp
    d = json.loads((tmp_path / "ev" / "report.json").read_text())["decision"]
    assert d["source"].startswith(source) and d["what_if"] == bool(flags)
    assert ("what-if rule" in capsys.readouterr().out) == bool(flags)
    if "--target-specificity" in flags:
        assert d["target_specificity"] == 0.9 and "specificity >= 0.9" in d["how"]
        assert d["split"] == "VALIDATION" and str(dataset) in d["source"]
    if "--vote-fraction" in flags:
        assert d["vote_fraction"] == 0.25 and d["aggregate"] == "vote"


def test_a_what_if_never_replaces_the_models_own_evaluation(run: Path, dataset: Path,
                                                             capsys) -> None:
    assert main(["-q", "evaluate", str(run / "best.pt"), str(dataset)]) == 0
    real = run / "eval-testing" / "report.json"
    before = real.read_bytes()
    assert json.loads(before)["decision"]["what_if"] is False
    capsys.readouterr()
    assert main(["-q", "evaluate", str(run / "best.pt"), str(dataset), "--threshold",
                 "0.1"]) == 0
    assert real.read_bytes() == before
    assert f"report, predictions and plots in {run / 'eval-testing-whatif'}" in \
        capsys.readouterr().out
    what_if = json.loads((run / "eval-testing-whatif" / "report.json").read_text())
    assert what_if["decision"]["what_if"] is True and what_if["decision"]["threshold"] == 0.1


def test_test_split_never_chooses_the_threshold(run: Path, dataset: Path,
                                                tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    a = evaluate(run / "best.pt", ds, EvalConfig(), out_dir=tmp_path / "a")
    with h5py.File(ds / SPLIT_FILES["TESTING"], "r+") as h5:  # flip every test label
        h5["files/label"][...] = 1 - h5["files/label"][()]
        h5["label"][...] = 1 - h5["label"][()]
    b = evaluate(run / "best.pt", ds, EvalConfig(), out_dir=tmp_path / "b")
    assert a["decision"]["threshold"] == b["decision"]["threshold"]
    assert a["recordings"]["accuracy"] + b["recordings"]["accuracy"] == pytest.approx(1.0)


def test_perfect_and_always_leak_models_through_the_pipeline(
        run: Path, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def perfect(model, data, device, **kw):
        p = (data.label == 0).astype(np.float32)  # LEAK is class 0
        return p, np.stack([p, 1 - p], 1)

    monkeypatch.setattr(evaluate_module, "predict_segments", perfect)
    r = evaluate(run / "best.pt", dataset, EvalConfig(), out_dir=tmp_path / "p")
    for level in ("segments", "recordings"):
        assert r[level]["f1"] == 1.0 and r[level]["roc_auc"] == 1.0
    assert r["misclassified"] == []

    def always(model, data, device, **kw):
        return np.ones(data.segments, np.float32), np.zeros((data.segments, 2), np.float32)

    monkeypatch.setattr(evaluate_module, "predict_segments", always)
    r = evaluate(run / "best.pt", dataset, EvalConfig(threshold=0.5), out_dir=tmp_path / "a")
    assert r["recordings"]["sensitivity"] == 1.0 and r["recordings"]["specificity"] == 0.0
    assert r["decision"]["how"] == "fixed by --threshold"


@pytest.mark.parametrize("case,message", [
    ("empty", "split is empty"),
    ("features", "different feature config"),
    ("classes", "differ from the model's"),
])
def test_mismatched_or_empty_data_is_one_line(run: Path, dataset: Path, recordings: Path,
                                              tmp_path: Path, capsys, case: str,
                                              message: str) -> None:
    ds = tmp_path / "ds"
    if case == "features":
        assert main(["-q", "build", str(recordings), "--out", str(ds), "--n-mels", "24",
                     "--workers", "1"]) == 0
    else:
        shutil.copytree(dataset, ds)
    if case == "empty":
        from leakhunter.config import FeatureConfig
        from leakhunter.dataset.store import SplitWriter
        (ds / SPLIT_FILES["TESTING"]).unlink()
        w = SplitWriter(ds / SPLIT_FILES["TESTING"], "TESTING", FeatureConfig(),
                        ["LEAK", "NOLEAK"], {})
        w.finish().replace(ds / SPLIT_FILES["TESTING"])
    if case == "classes":
        for split in SPLIT_FILES.values():
            with h5py.File(ds / split, "r+") as h5:
                h5.attrs["labels"] = json.dumps(["CRACK", "QUIET"])
    assert main(["evaluate", str(run / "best.pt"), str(ds)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_multiclass_recordings_and_segments_against_scikit_learn(multiclass_run,
                                                                  tmp_path: Path,
                                                                  capsys) -> None:
    """A recording's class by segment vote, reported beside (and differing from) the
    segment-level numbers, both as scikit-learn computes them; predict agrees."""
    import torch

    from leakhunter.dataset.segments import load_split
    from leakhunter.model.card import load_model

    rec, ds, trained = multiclass_run
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert main(["evaluate", str(run / "best.pt"), str(ds), "--out", str(tmp_path / "ev"),
                 "--segments"]) == 0
    printed = capsys.readouterr().out
    assert "class per recording (vote of segments): accuracy" in printed
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    classes = report["classes"]
    assert classes["aggregate"] == "vote"

    model, meta = load_model(run / "best.pt")
    data = load_split(ds / SPLIT_FILES["TESTING"])
    cpu = torch.device("cpu")
    _, logits = evaluate_module.predict_segments(
        model, data, cpu, autocast=autocast(resolve_amp("auto", cpu), cpu))
    prob = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    seg_pred = prob.argmax(axis=1)
    rec_pred = []
    for r in range(data.recordings):  # the vote, counted by hand
        p = prob[data.file_index == r]
        votes = np.bincount(p.argmax(axis=1), minlength=5)
        leaders = np.flatnonzero(votes == votes.max())
        rec_pred.append(leaders[np.argmax(p.mean(axis=0)[leaders])])
    labels = list(range(5))
    for level, truth, pred, count in (
            ("recordings", data.file_label, np.array(rec_pred), data.recordings),
            ("segments", data.label, seg_pred, data.segments)):
        got = classes[level]
        assert got["count"] == count and np.array(got["confusion"]).sum() == count
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
        np.testing.assert_array_equal(got["confusion"],
                                      skm.confusion_matrix(truth, pred, labels=labels))
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            truth, pred, labels=labels, zero_division=0)
        for i, name in enumerate(list(meta.classes)):
            row = got["report"][name]
            assert (row["precision"], row["recall"], row["f1-score"], row["support"]) == \
                pytest.approx((precision[i], recall[i], f1[i], support[i]))
    assert classes["recordings"]["confusion"] != classes["segments"]["confusion"]

    rows = list(csv.DictReader((tmp_path / "ev" / "predictions.csv").open()))
    assert [r["predicted_class"] for r in rows] == [list(meta.classes)[c] for c in rec_pred]
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in list(meta.classes)) == pytest.approx(1, 1e-4)
    assert (tmp_path / "ev" / "confusion_classes.png").stat().st_size > 1000

    # predict decides each recording's class by the same rule
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", str(run / "best.pt"), *[r["path"] for r in rows], "--out",
                 str(out), "--workers", "1"]) == 0
    predicted = {r["path"]: r for r in csv.DictReader(out.open())}
    for r in rows:
        mine = predicted[r["path"]]
        probs = sorted((float(mine[f"p_{c}"]) for c in list(meta.classes)), reverse=True)
        if probs[0] - probs[1] > 0.02:  # clear of bf16 rounding in a near tie
            assert mine["predicted_class"] == r["predicted_class"], r["path"]

    # --class-aggregate mean is a what-if, reported as such
    mean = evaluate(run / "best.pt", ds, EvalConfig(class_aggregate="mean"),
                    out_dir=tmp_path / "mean")
    assert mean["classes"]["aggregate"] == "mean" and mean["decision"]["what_if"]


@pytest.mark.parametrize("pattern", ["predictions.csv.tmp", "segments.csv.tmp",
                                     "report.json.tmp", ".roc.png.tmp"])
def test_evaluate_write_failures_keep_the_model(run_copy: Path, dataset: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch,
                                                pattern: str) -> None:
    model = run_copy / "best.pt"
    before = model.read_bytes()
    fail_writes(monkeypatch, pattern, errno.EIO)
    assert main(["-q", "evaluate", str(model), str(dataset), "--segments"]) == 1
    one_line(capsys.readouterr().err, pattern.strip(".").replace(".tmp", ""),
             REASON[errno.EIO])
    assert model.read_bytes() == before and temps(run_copy) == []
