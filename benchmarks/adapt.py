"""Benchmark: a model judging a new site as it is, and with its normalisation statistics
re-estimated on that site's unlabelled recordings (leakhunter.learn.adapt), same run.

For each of the two: per-recording F1, specificity and sensitivity on the new site's and
the old site's TESTING splits (the model's own threshold), and how it would pseudo-label
the unlabelled pool (``learn --unlabelled``'s rule): recordings confident enough, called
leaks, and wrongly decided -- the truth read from the pool's paths (a ``LEAK`` folder), as
`synth` writes them.

    PYTHONPATH=src python3 benchmarks/adapt.py MODEL POOL_DATASET NEW_TEST_DATASET \\
        [--old OLD_DATASET] [--confidence 0.8]

POOL_DATASET: the unlabelled new site as `learn` builds it (RUN_DIR/data); its TRAINING
split is the pool. NEW_TEST_DATASET, OLD_DATASET: labelled datasets whose TESTING is scored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from leakhunter.dataset.segments import SplitData, load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.learn.adapt import adapted_copy
from leakhunter.learn.selection import decide
from leakhunter.model.card import ModelCard, load_model
from leakhunter.model.cnn import LeakCNN
from leakhunter.model.metrics import binary_scores, recording_scores
from leakhunter.model.scoring import predict_segments


def site(model: LeakCNN, card: ModelCard, data: SplitData) -> str:
    rule = card.rule
    prob, _ = predict_segments(model, data, torch.device("cpu"))
    scores = recording_scores(data.file_index, prob, data.recordings, rule.aggregate,
                              rule.vote_fraction)
    r = binary_scores(np.isin(data.file_label, card.positive_indices), scores >= rule.threshold)
    return f"F1 {r['f1']:.3f} (spec {r['specificity']:.3f}, sens {r['sensitivity']:.3f})"


def pseudo_labels(model: LeakCNN, card: ModelCard, pool: SplitData, confidence: float) -> str:
    prob, logits = predict_segments(model, pool, torch.device("cpu"))
    class_prob = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    leak, _, conf = decide(prob, class_prob, pool.file_index, pool.recordings, card.rule,
                           tuple(card.positive_indices))
    truth = np.array([f"{Path(p).parent.name}".upper() in card.positive for p in pool.paths])
    used = conf >= confidence
    return (f"{used.sum()} of {used.size} confident, {int((used & leak).sum())} called leaks, "
            f"{int((used & (leak != truth)).sum())} wrong "
            f"({int((used & truth & ~leak).sum())} leaks called quiet)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the model (best.pt)")
    parser.add_argument("pool", type=Path, help="the unlabelled new site's dataset folder")
    parser.add_argument("new_test", type=Path, help="a labelled new-site dataset folder")
    parser.add_argument("--old", type=Path, default=None, help="the old site's dataset folder")
    parser.add_argument("--confidence", type=float, default=0.8,
                        help="learn's --confidence (default: 0.8)")
    args = parser.parse_args()
    model, card = load_model(args.model)
    pool = load_split(args.pool / SPLIT_FILES["TRAINING"], "yes")
    new = load_split(args.new_test / SPLIT_FILES["TESTING"], "yes")
    old = load_split(args.old / SPLIT_FILES["TESTING"], "yes") if args.old else None
    for name, judge in (("as it is", model),
                        ("adapted", adapted_copy(model, pool, torch.device("cpu")))):
        print(f"{name:10s} new site {site(judge, card, new)}"
              + (f"; old site {site(judge, card, old)}" if old else ""))
        print(f"{'':10s} pool: {pseudo_labels(judge, card, pool, args.confidence)}")


if __name__ == "__main__":
    main()
