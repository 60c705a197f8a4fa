"""`leakhunter evaluate`: metrics against scikit-learn, thresholds, the report, bad input."""

from __future__ import annotations

import csv
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
from leakhunter.model.metrics import (
    binary_scores,
    choose_threshold,
    recording_classes,
    recording_scores,
    vote_fractions,
)
from leakhunter.runtime.amp import autocast, resolve_amp


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def test_binary_scores_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        truth, pred = rng.random(200) < rng.random(), rng.random(200) < rng.random()
        s = binary_scores(truth, pred)
        assert s["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
        assert s["precision"] == pytest.approx(skm.precision_score(truth, pred, zero_division=0))
        assert s["sensitivity"] == pytest.approx(skm.recall_score(truth, pred, zero_division=0))
        assert s["specificity"] == pytest.approx(
            skm.recall_score(~truth, ~pred, zero_division=0))
        assert s["f1"] == pytest.approx(skm.f1_score(truth, pred, zero_division=0))
        tn, fp, fn, tp = skm.confusion_matrix(truth, pred, labels=[False, True]).ravel()
        assert (s["tn"], s["fp"], s["fn"], s["tp"]) == (tn, fp, fn, tp)


def test_always_leak_and_perfect_models() -> None:
    truth = np.array([True] * 30 + [False] * 70)
    always = binary_scores(truth, np.ones(100, bool))
    assert always["sensitivity"] == 1.0 and always["specificity"] == 0.0
    assert always["precision"] == pytest.approx(0.3)
    assert always["f1"] == pytest.approx(2 * 0.3 / 1.3)
    perfect = binary_scores(truth, truth)
    assert all(perfect[k] == 1.0 for k in ("accuracy", "precision", "sensitivity",
                                           "specificity", "f1"))


@pytest.mark.parametrize("aggregate", ["vote", "mean", "max"])
def test_recording_scores_decide_like_their_definition(aggregate: str) -> None:
    rng = np.random.default_rng(0)
    file_index = np.repeat(np.arange(40), rng.integers(1, 25, 40))
    prob = rng.random(file_index.size)
    for vf in (0.3, 0.5, 1.0):
        scores = recording_scores(file_index, prob, 40, aggregate, vf)
        for t in (0.1, 0.5, 0.9):
            if aggregate == "vote":
                expected = vote_fractions(file_index, prob, 40, t) >= vf - 1e-12
            else:
                per = [prob[file_index == i] for i in range(40)]
                expected = np.array([(p.mean() if aggregate == "mean" else p.max()) >= t
                                     for p in per])
            np.testing.assert_array_equal(scores >= t, expected)


def test_threshold_choice() -> None:
    truth = np.array([True] * 5 + [False] * 5)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.5, 0.4, 0.3, 0.1, 0.05])
    t, how = choose_threshold(truth, scores)
    assert 0.5 < t <= 0.6 and "F1" in how  # the four clear leaks, no false alarm
    t, _ = choose_threshold(truth, scores, target_specificity=0.8)
    assert 0.4 < t <= 0.5  # one false alarm (0.5) allowed; a second (0.4) is not
    assert binary_scores(truth, scores >= t)["specificity"] == 0.8
    assert binary_scores(truth, scores >= t)["sensitivity"] == 0.8
    t, how = choose_threshold(np.array([True, False]), np.array([0.2, 0.9]), 1.0)
    assert t > 0.9 and "no threshold" in how


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


def test_choose_threshold_equals_scoring_every_candidate() -> None:
    """The cumulative-count implementation picks what scoring each candidate with
    binary_scores picks (the definition), ties and all."""
    def reference(truth, scores, target=None):
        best_t, best_f1 = None, -1.0
        for t in np.unique(scores)[::-1]:
            s = binary_scores(truth, scores >= t)
            if target is not None:
                if s["specificity"] + 1e-12 >= target:
                    best_t = t
                else:
                    break
            elif s["f1"] > best_f1:
                best_t, best_f1 = t, s["f1"]
        return best_t

    rng = np.random.default_rng(5)
    for trial in range(200):
        n = int(rng.integers(2, 60))
        truth = rng.random(n) < rng.random()
        scores = np.round(rng.random(n), int(rng.integers(1, 3)))  # many ties
        for target in (None, 0.5, 0.8, 1.0):
            expected = reference(truth, scores, target)
            t, _ = choose_threshold(truth, scores, target)
            if expected is None:
                assert (scores >= t).sum() == 0
            else:
                np.testing.assert_array_equal(scores >= t, scores >= expected,
                                              err_msg=f"trial {trial}, target {target}")


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


def test_recording_classes_by_vote_and_by_mean() -> None:
    rng = np.random.default_rng(2)
    file_index = np.concatenate([[0, 0, 0, 1, 1], np.repeat(np.arange(2, 30),
                                                            rng.integers(1, 9, 28))])
    prob = rng.dirichlet(np.ones(4), file_index.size)
    # recording 0: two votes for class 0, but class 2 has the highest mean probability
    prob[:3] = [[0.4, 0.35, 0.25, 0], [0.4, 0.35, 0.25, 0], [0, 0, 1, 0]]
    # recording 1: one vote each for classes 0 and 2; the tie goes to the higher mean (2)
    prob[3:5] = [[0.6, 0.4, 0, 0], [0.1, 0.1, 0.8, 0]]
    assert recording_classes(file_index, prob, 30, "vote")[0][:2].tolist() == [0, 2]
    assert recording_classes(file_index, prob, 30, "mean")[0][:2].tolist() == [2, 2]
    for how in ("vote", "mean"):
        predicted, mean = recording_classes(file_index, prob, 30, how)
        for r in range(30):
            p = prob[file_index == r]
            np.testing.assert_allclose(mean[r], p.mean(axis=0))
            if how == "mean":
                assert predicted[r] == p.mean(axis=0).argmax()
            else:
                votes = np.bincount(p.argmax(axis=1), minlength=4)
                leaders = np.flatnonzero(votes == votes.max())
                assert predicted[r] == leaders[np.argmax(p.mean(axis=0)[leaders])]


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
