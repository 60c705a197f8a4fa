"""Metrics of leak decisions: per-recording scores, thresholds, binary scores.

Pure numpy, no model: what ``train`` (per epoch) and ``evaluate`` both use. A recording's
segments vote: it is a leak when at least ``vote_fraction`` of them have a leak probability
at or above the threshold (alternatives: their mean or max reaches the threshold).
"""

from __future__ import annotations

import numpy as np


def vote_fractions(file_index: np.ndarray, leak_prob: np.ndarray, n_files: int,
                   threshold: float = 0.5) -> np.ndarray:
    """Share of each recording's segments with leak probability >= ``threshold``, ``[R]``."""
    hits = np.bincount(file_index, weights=(leak_prob >= threshold), minlength=n_files)
    counts = np.bincount(file_index, minlength=n_files)
    return hits / np.maximum(counts, 1)


def recording_scores(file_index: np.ndarray, leak_prob: np.ndarray, n_files: int,
                     aggregate: str = "vote", vote_fraction: float = 0.5) -> np.ndarray:
    """One score per recording, ``[R]``, such that the recording is a leak at segment
    threshold ``t`` exactly when its score is >= ``t``.

    * ``vote``: the k-th largest segment probability, k = ceil(vote_fraction * segments):
      at least k segments reach ``t`` exactly when the k-th largest does.
    * ``mean`` / ``max``: the mean / largest segment probability.

    Scores are independent of the threshold, so one sort serves a whole threshold sweep.
    """
    counts = np.bincount(file_index, minlength=n_files)
    if aggregate == "mean":
        return np.bincount(file_index, weights=leak_prob, minlength=n_files) / \
            np.maximum(counts, 1)
    order = np.lexsort((-leak_prob, file_index))  # by recording, then probability falling
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if aggregate == "max":
        k = np.ones(n_files, dtype=np.int64)
    else:
        k = np.maximum(1, np.ceil(vote_fraction * counts - 1e-9).astype(np.int64))
    return leak_prob[order][starts + np.minimum(k, np.maximum(counts, 1)) - 1]


def choose_threshold(truth: np.ndarray, scores: np.ndarray,
                     target_specificity: float | None = None) -> tuple[float, str]:
    """A segment threshold chosen on recordings' ``truth`` (bool) and ``scores``.

    Default: the one that maximises per-recording F1 (ties: the highest, i.e. the fewest
    false alarms). With ``target_specificity``: the lowest whose specificity reaches the
    target, i.e. the most sensitive one that keeps false alarms within it. The value is
    placed midway between the deciding score and the next lower one, so the decisions on
    these recordings are as chosen, with the widest margin. Returns (threshold, how).
    """
    candidates = np.unique(scores)[::-1]  # falling: each admits more recordings as leaks
    best_t, best_f1 = None, -1.0
    for t in candidates:
        s = binary_scores(truth, scores >= t)
        if target_specificity is not None:
            if s["specificity"] + 1e-12 >= target_specificity:
                best_t = t  # keep going: a lower threshold is more sensitive
            else:
                break
        elif s["f1"] > best_f1:
            best_t, best_f1 = t, s["f1"]
    if best_t is None:  # no threshold reaches the target: call nothing a leak
        return float(min(1.0, candidates[0] + 1e-6)), (
            f"no threshold reaches specificity {target_specificity:g} on VALIDATION; "
            f"above every recording's score")
    lower = scores[scores < best_t]
    t = float((best_t + lower.max()) / 2) if lower.size else float(best_t)
    if target_specificity is not None:
        return t, f"lowest threshold with specificity >= {target_specificity:g} on VALIDATION"
    return t, f"maximises per-recording F1 on VALIDATION ({best_f1:.4f})"


def threshold_sweep(truth: np.ndarray, scores: np.ndarray, points: int = 201
                    ) -> dict[str, np.ndarray]:
    """Per-recording F1, sensitivity and specificity at ``points`` thresholds in [0, 1]."""
    grid = np.linspace(0.0, 1.0, points)
    rows = [binary_scores(truth, scores >= t) for t in grid]
    return {"threshold": grid, **{k: np.array([r[k] for r in rows])
                                  for k in ("f1", "sensitivity", "specificity")}}


def binary_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, sensitivity (recall), specificity and F1 of boolean arrays.

    A ratio with an empty denominator is 0.0 (as scikit-learn's ``zero_division=0``).
    """
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    tp = int((truth & predicted).sum())
    tn = int((~truth & ~predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {"accuracy": ratio(tp + tn, len(truth)), "precision": precision,
            "sensitivity": recall, "specificity": ratio(tn, tn + fp),
            "f1": ratio(2 * precision * recall, precision + recall) if tp else 0.0,
            "tp": tp, "tn": tn, "fp": fp, "fn": fn}
