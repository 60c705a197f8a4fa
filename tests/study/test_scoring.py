"""The study's per-recording scoring: train's threshold rule, scikit-learn's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from leakhunter.errors import InputError
from leakhunter.model.metrics import choose_threshold, recording_scores
from leakhunter.study.scoring import METRICS, recording_metrics


def _split(rng: np.random.Generator, n_rec: int, leak_share: float = 0.5):
    """Random segments of ``n_rec`` recordings (1..9 segments each), leak recordings'
    probabilities a little higher: (index [N], prob [N], truth [R])."""
    truth = np.arange(n_rec) < round(leak_share * n_rec)
    rng.shuffle(truth)
    counts = rng.integers(1, 10, n_rec)
    index = rng.permutation(np.repeat(np.arange(n_rec), counts))  # any segment order
    prob = np.clip(rng.random(index.size) * 0.8 + 0.2 * truth[index], 0.0, 1.0)
    return index, prob, truth


def _voted(index: np.ndarray, prob: np.ndarray, n_rec: int, threshold: float,
           vote_fraction: float) -> np.ndarray:
    """Each recording decided from scratch: enough of its segments reach the threshold."""
    return np.array([np.mean(prob[index == r] >= threshold) >= vote_fraction
                     for r in range(n_rec)])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("vote_fraction", [0.5, 0.3])
def test_metrics_equal_scikit_learn_on_the_same_decisions(seed: int,
                                                          vote_fraction: float) -> None:
    rng = np.random.default_rng(seed)
    vi, vp, vt = _split(rng, 15)
    ti, tp, tt = _split(rng, 12)
    got = recording_metrics(vi, vp, vt, ti, tp, tt, vote_fraction=vote_fraction)
    assert tuple(got) == (*METRICS, "threshold")

    expected_t, _ = choose_threshold(vt, recording_scores(vi, vp, 15, "vote", vote_fraction))
    assert got["threshold"] == expected_t
    decided = _voted(ti, tp, 12, expected_t, vote_fraction)
    assert got["accuracy"] == pytest.approx(accuracy_score(tt, decided))
    assert got["precision"] == pytest.approx(precision_score(tt, decided, zero_division=0))
    assert got["sensitivity"] == pytest.approx(recall_score(tt, decided, zero_division=0))
    assert got["specificity"] == pytest.approx(
        recall_score(tt, decided, pos_label=False, zero_division=0))
    assert got["f1"] == pytest.approx(f1_score(tt, decided, zero_division=0))
    # AUC of the recordings' vote scores: the k-th largest segment probability
    scores = [np.sort(tp[ti == r])[::-1][max(1, math.ceil(vote_fraction * (ti == r).sum()))
                                         - 1] for r in range(12)]
    assert got["auc"] == pytest.approx(roc_auc_score(tt, scores))


def test_no_predicted_leak_gives_precision_zero() -> None:
    vi = np.repeat(np.arange(4), 3)
    vt = np.array([True, True, False, False])
    vp = np.where(vt[vi], 0.9, 0.1)
    ti = np.repeat(np.arange(4), 2)
    tt = np.array([True, False, True, False])
    got = recording_metrics(vi, vp, vt, ti, np.full(8, 0.2), tt)
    assert got["threshold"] == pytest.approx(0.5)
    assert got["precision"] == 0.0 == precision_score(tt, np.zeros(4, bool), zero_division=0)
    assert (got["sensitivity"], got["specificity"], got["f1"]) == (0.0, 1.0, 0.0)
    assert got["accuracy"] == 0.5
    assert got["auc"] == 0.5  # every score tied


def test_one_class_test_set_gives_auc_nan() -> None:
    rng = np.random.default_rng(5)
    vi, vp, vt = _split(rng, 10)
    ti, tp, _ = _split(rng, 6)
    got = recording_metrics(vi, vp, vt, ti, tp, np.zeros(6, bool))
    assert math.isnan(got["auc"])
    assert got["sensitivity"] == 0.0 and got["precision"] == 0.0
    decided = _voted(ti, tp, 6, got["threshold"], 0.5)
    assert got["specificity"] == pytest.approx(1.0 - decided.mean())
    assert got["accuracy"] == got["specificity"]


def test_target_specificity_is_passed_on() -> None:
    rng = np.random.default_rng(7)
    vi, vp, vt = _split(rng, 20)
    ti, tp, tt = _split(rng, 8)
    got = recording_metrics(vi, vp, vt, ti, tp, tt, target_specificity=1.0)
    expected, _ = choose_threshold(vt, recording_scores(vi, vp, 20), 1.0)
    assert got["threshold"] == expected


def test_bad_inputs_raise_one_line() -> None:
    index, prob, truth = np.array([0, 0, 2]), np.array([0.1, 0.2, 0.3]), np.ones(3, bool)
    with pytest.raises(InputError, match="validation: 1 recording\\(s\\) without segments"):
        recording_metrics(index, prob, truth, index, prob, truth)
    with pytest.raises(InputError, match="test: .* recording indices for"):
        recording_metrics(np.array([0]), np.array([0.5]), np.ones(1, bool),
                          index, prob[:2], truth)
    with pytest.raises(InputError, match="outside"):
        recording_metrics(np.array([0, 3]), np.array([0.5, 0.5]), np.ones(2, bool),
                          np.array([0]), np.array([0.5]), np.ones(1, bool))
