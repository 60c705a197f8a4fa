"""Scores and thresholds (leakhunter.model.metrics): against scikit-learn and against their
definitions, by segment and by recording."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from leakhunter.model.metrics import (
    binary_scores,
    choose_threshold,
    recording_classes,
    recording_scores,
    vote_fractions,
)


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
