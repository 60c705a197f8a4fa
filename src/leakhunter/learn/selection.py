"""Which new segments go back into training: the selection rule of Ma et al. (2025).

Every segment of every new recording is scored by the current model. Per recording, a
target class is set -- its true label, or (unlabelled data) the model's own decision for the
recording, used only when the recording-level confidence reaches ``confidence`` -- and the
``keep`` share of its segments that agree most with that class (highest probability of it)
is selected. Recordings the model decided wrongly (labelled data) are the informative ones;
the counts say how many selected segments came from false alarms and from misses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..model.card import Rule
from ..model.metrics import recording_classes, recording_scores


@dataclass
class Selection:
    """The selected segments of one split and what they came from.

    ``segments``: selected segment indices (sorted); ``label``: their target class, ``[N]``;
    ``recording_label``: each recording's target class, -1 where it is not used
    (unlabelled and below the confidence); ``decided_leak`` / ``confidence``: the model's
    decision and its confidence per recording.
    """

    segments: np.ndarray
    label: np.ndarray
    recording_label: np.ndarray
    decided_leak: np.ndarray
    confidence: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def decide(prob: np.ndarray, class_prob: np.ndarray, file_index: np.ndarray, n: int,
           rule: Rule, positive: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per recording: the model's leak decision ``[R]`` bool, its class ``[R]`` int, and
    the confidence ``[R]``: the share of its segments that agree with that decision (on
    the same side of the threshold, binary; ranking that class first, multi-class: more
    than two columns in ``class_prob``). ``positive``: the leak classes' indices."""
    scores = recording_scores(file_index, prob, n, rule.aggregate, rule.vote_fraction)
    leak = scores >= rule.threshold
    counts = np.maximum(np.bincount(file_index, minlength=n), 1)
    if class_prob.shape[1] > 2:
        cls, _ = recording_classes(file_index, class_prob, n, rule.class_aggregate)
        agree = class_prob.argmax(axis=1) == cls[file_index]
    else:
        pos, neg = positive[0], [c for c in range(class_prob.shape[1])
                                 if c not in positive][0]
        cls = np.where(leak, pos, neg)
        agree = (prob >= rule.threshold) == leak[file_index]
    return leak, cls, np.bincount(file_index, weights=agree, minlength=n) / counts


def select(prob: np.ndarray, class_prob: np.ndarray, file_index: np.ndarray,
           truth: np.ndarray | None, rule: Rule, positive: tuple[int, ...], keep: float,
           confidence: float) -> Selection:
    """Apply the selection to one split's scored segments, judged by the model's ``rule``.

    ``prob``: leak probability ``[N]``; ``class_prob``: class probabilities ``[N, C]``;
    ``file_index``: recording of each segment ``[N]`` (recordings contiguous, as in a
    dataset); ``truth``: true class per recording ``[R]``, or None for unlabelled data;
    ``positive``: the leak classes' indices.
    """
    n = int(truth.shape[0]) if truth is not None else int(file_index.max()) + 1
    leak, cls, conf = decide(prob, class_prob, file_index, n, rule, positive)
    if truth is None:
        target = np.where(conf >= confidence, cls, -1)
    else:
        target = truth.astype(np.int64)
    picked: list[np.ndarray] = []
    starts = np.concatenate([[0], np.cumsum(np.bincount(file_index, minlength=n))])
    for r in np.flatnonzero(target >= 0):
        lo, hi = starts[r], starts[r + 1]
        if hi == lo:
            continue
        agreement = class_prob[lo:hi, target[r]]
        k = max(1, math.ceil(keep * (hi - lo) - 1e-9))
        # the k most agreeing; ties go to the earlier segment (a stable sort)
        picked.append(lo + np.sort(np.argsort(-agreement, kind="stable")[:k]))
    segments = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    label = target[file_index[segments]] if segments.size else np.zeros(0, np.int64)
    used = target >= 0
    counts = {"recordings": int(n), "recordings_used": int(used.sum()),
              "segments_scored": int(file_index.size), "segments_selected": int(segments.size)}
    if truth is None:
        counts["below_confidence"] = int((~used).sum())
        counts["pseudo_leak"] = int((used & leak).sum())
    else:
        is_leak = np.isin(truth, positive)
        false_alarm = leak & ~is_leak
        miss = ~leak & is_leak
        seg_rec = file_index[segments]
        counts.update(false_alarms=int(false_alarm.sum()), misses=int(miss.sum()),
                      segments_from_false_alarms=int(false_alarm[seg_rec].sum()),
                      segments_from_misses=int(miss[seg_rec].sum()))
    return Selection(segments, label, target, leak, conf, counts)
