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


def recording_classes(file_index: np.ndarray, class_prob: np.ndarray, n_files: int,
                      how: str = "vote") -> tuple[np.ndarray, np.ndarray]:
    """Each recording's class, ``[R]`` int, and mean class probabilities, ``[R, C]``.

    ``class_prob``: ``[N, C]`` softmax class probabilities of the segments. ``vote``: the
    class most segments rank first (ties: the one of highest mean probability); ``mean``:
    the class of highest mean probability. The one rule ``evaluate`` and ``predict`` use.
    """
    n_classes = class_prob.shape[1]
    counts = np.maximum(np.bincount(file_index, minlength=n_files), 1)
    mean = np.stack([np.bincount(file_index, weights=class_prob[:, c], minlength=n_files)
                     for c in range(n_classes)], axis=1) / counts[:, None]
    if how == "mean":
        return mean.argmax(axis=1), mean
    votes = np.zeros((n_files, n_classes), np.int64)
    np.add.at(votes, (file_index, class_prob.argmax(axis=1)), 1)
    leaders = votes == votes.max(axis=1, keepdims=True)
    return np.where(leaders, mean, -1.0).argmax(axis=1), mean


def choose_threshold(truth: np.ndarray, scores: np.ndarray,
                     target_specificity: float | None = None,
                     on: str = "VALIDATION") -> tuple[float, str]:
    """A segment threshold chosen on recordings' ``truth`` (bool) and ``scores``.

    Default: the one that maximises per-recording F1 (ties: the highest, i.e. the fewest
    false alarms). With ``target_specificity``: the lowest whose specificity reaches the
    target, i.e. the most sensitive one that keeps false alarms within it. The value is
    placed midway between the deciding score and the next lower one, so the decisions on
    these recordings are as chosen, with the widest margin. ``on`` names the split in the
    description. Returns (threshold, how).

    Every candidate is scored at once from cumulative counts (one sort, O(R log R)), so
    choosing on tens of thousands of recordings after every training epoch stays cheap; the
    ratios are computed with the same operations as :func:`binary_scores`, so ties resolve
    exactly as scoring each candidate with it would.
    """
    truth = truth.astype(bool)
    candidates = np.unique(scores)[::-1]  # falling: each admits more recordings as leaks
    # recordings called leak at each candidate t: those with score >= t
    tp = np.searchsorted(np.sort(scores[truth]), candidates, side="left")
    tp = truth.sum() - tp
    fp = (~truth).sum() - np.searchsorted(np.sort(scores[~truth]), candidates, side="left")
    fn, tn = truth.sum() - tp, (~truth).sum() - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f1 = np.where(tp > 0, 2 * precision * recall / np.where(tp > 0, precision + recall,
                                                                1.0), 0.0)
        specificity = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), 0.0)
    best_f1 = 0.0
    if target_specificity is not None:
        reached = specificity + 1e-12 >= target_specificity
        # the run of candidates from the top that keep the target; a lower threshold is
        # more sensitive, so the last of that run
        run = int(np.argmin(reached)) if not reached.all() else len(reached)
        best = run - 1 if run > 0 else None
    else:
        best = int(np.argmax(f1))  # the first maximum: the highest threshold among ties
        best_f1 = float(f1[best])
    if best is None:  # no threshold reaches the target: call nothing a leak (above 1.0
        # when a score is exactly 1.0, which float32 probabilities can be)
        return float(candidates[0]) + 1e-6, (
            f"no threshold reaches specificity {target_specificity:g} on {on}; "
            f"above every recording's score")
    best_t = candidates[best]
    lower = scores[scores < best_t]
    t = float((best_t + lower.max()) / 2) if lower.size else float(best_t)
    if target_specificity is not None:
        return t, f"lowest threshold with specificity >= {target_specificity:g} on {on}"
    return t, f"maximises per-recording F1 on {on} ({best_f1:.4f})"


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
