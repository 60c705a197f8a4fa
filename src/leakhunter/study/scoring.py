"""The one per-recording scoring of every model a study compares.

Each model (the mel CNN, the MFCC baselines) only has to give a leak probability per
segment of the validation and test recordings; the decision rule and the metrics are then
the same for all, and the same as ``train`` and ``evaluate`` use
(:mod:`leakhunter.model.metrics`): a recording's score is the vote score of its segments
(:func:`recording_scores`), the threshold is the one :func:`choose_threshold` picks on the
VALIDATION recordings, and a test recording is a leak when its score reaches it.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..model.metrics import binary_scores, choose_threshold, recording_scores

METRICS = ("accuracy", "precision", "sensitivity", "specificity", "f1", "auc")
"""The per-recording metrics :func:`recording_metrics` returns (besides ``threshold``)."""


def recording_metrics(val_index: np.ndarray, val_prob: np.ndarray, val_truth_rec: np.ndarray,
                      test_index: np.ndarray, test_prob: np.ndarray,
                      test_truth_rec: np.ndarray, vote_fraction: float = 0.5,
                      target_specificity: float | None = None) -> dict[str, float]:
    """Per-recording test metrics of a model, with the threshold chosen on validation.

    ``*_index``: int ``[N]``, the recording (0 .. R-1) of each segment; ``*_prob``: float
    ``[N]``, each segment's leak probability in [0, 1]; ``*_truth_rec``: bool ``[R]``,
    whether each recording is a leak. Every recording needs at least one segment.

    The threshold is :func:`choose_threshold` on the validation recordings' vote scores
    (F1-best; with ``target_specificity``, the lowest reaching it), as ``train`` chooses
    it; a test recording is a leak when at least ``vote_fraction`` of its segments reach
    it. Returns the :data:`METRICS` of the test recordings (fractions in [0, 1]) and
    ``threshold``. A ratio with an empty denominator is 0.0 (scikit-learn's
    ``zero_division=0``: e.g. precision when nothing is called a leak). ``auc`` is the ROC
    AUC of the test recordings' vote scores (the score ``evaluate`` reports its recording
    AUC from); NaN when the test recordings hold one class only, where it is undefined.
    Raises :class:`InputError` for a recording without segments or mismatched lengths.
    """
    val_scores = _scores(val_index, val_prob, val_truth_rec, vote_fraction, "validation")
    test_scores = _scores(test_index, test_prob, test_truth_rec, vote_fraction, "test")
    val_truth = np.asarray(val_truth_rec, bool)
    test_truth = np.asarray(test_truth_rec, bool)
    threshold, _ = choose_threshold(val_truth, val_scores, target_specificity)
    scores = binary_scores(test_truth, test_scores >= threshold)
    out = {k: float(scores[k]) for k in METRICS if k != "auc"}
    out["auc"] = _roc_auc(test_truth, test_scores)
    out["threshold"] = float(threshold)
    return out


def _scores(index: np.ndarray, prob: np.ndarray, truth: np.ndarray, vote_fraction: float,
            name: str) -> np.ndarray:
    """Vote scores ``[R]`` of one split's recordings, after checking the inputs fit."""
    index = np.asarray(index, np.int64)
    prob = np.asarray(prob, np.float64)
    n_files = len(truth)
    if index.shape != prob.shape or index.ndim != 1:
        raise InputError(f"{name}: {index.shape} recording indices for {prob.shape} "
                         "segment probabilities")
    if index.size and (index.min() < 0 or index.max() >= n_files):
        raise InputError(f"{name}: a segment names a recording outside 0..{n_files - 1}")
    empty = np.flatnonzero(np.bincount(index, minlength=n_files) == 0)
    if empty.size:
        raise InputError(f"{name}: {empty.size} recording(s) without segments "
                         f"(first: index {empty[0]})")
    return recording_scores(index, prob, n_files, "vote", vote_fraction)


def _roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of recordings' scores; NaN when only one class is present."""
    if truth.all() or not truth.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, score))
