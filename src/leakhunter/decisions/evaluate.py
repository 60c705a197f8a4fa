"""`leakhunter evaluate`: a model's decisions on a split, against the truth.

The split's segments are scored in large batches (:func:`leakhunter.model.scoring.
predict_segments`, the code ``train`` validates with) and regrouped per recording; a
recording is decided by the rule the model carries (:class:`leakhunter.model.card.Rule`), or
by a what-if rule (:func:`decision_rule`) that is reported and never saved.
"""

from __future__ import annotations

import csv
import logging
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import EvalConfig
from ..dataset.segments import SplitData, load_split
from ..dataset.store import SPLIT_FILES
from ..model import familiarity
from ..model.card import ModelCard, load_model
from ..model.cnn import LeakCNN
from ..model.metrics import (
    binary_scores,
    choose_threshold,
    recording_classes,
    recording_scores,
    threshold_sweep,
    vote_fractions,
)
from ..model.scoring import predict_segments
from ..runtime import devices, safe_write
from ..runtime.amp import autocast, resolve_amp
from .plots import write_evaluation_plots

log = logging.getLogger(__name__)


def decision_rule(model: LeakCNN, card: ModelCard, dataset_dir: Path,
                  device: torch.device, *, threshold: float | None = None,
                  target_specificity: float | None = None, aggregate: str | None = None,
                  vote_fraction: float | None = None, class_aggregate: str | None = None,
                  split: str = "VALIDATION", keep_model_threshold: bool = True,
                  autocast: AbstractContextManager | None = None) -> dict[str, Any]:
    """The decision rule to score with, and where it came from.

    * ``threshold`` given: that threshold (``source`` "--threshold").
    * nothing given, ``keep_model_threshold``, and the model carries a threshold for the
      same aggregation and vote fraction: the model's (``source`` "model").
    * otherwise (a target specificity, another aggregation or vote fraction, or a model
      without a threshold): chosen on ``split`` of ``dataset_dir`` (``source`` says which)
      by :func:`choose_threshold`, the one implementation ``train`` uses too.

    ``aggregate``, ``vote_fraction`` and ``class_aggregate`` (multi-class: how a
    recording's class is decided) replace the model's when given.

    Returns ``threshold``, ``how``, ``source``, ``aggregate``, ``vote_fraction``,
    ``class_aggregate``, ``target_specificity``, ``split`` and ``model_threshold`` (the
    model's own, or None).
    Raises :class:`DatasetError` when ``split`` does not fit the model.
    """
    own = card.rule
    new = own.replace(aggregate=aggregate, vote_fraction=vote_fraction,
                      class_aggregate=class_aggregate)
    rule = {"aggregate": new.aggregate, "vote_fraction": new.vote_fraction,
            "class_aggregate": new.class_aggregate,
            "target_specificity": target_specificity, "split": None,
            "model_threshold": card.stored_threshold}
    if threshold is not None:
        return {**rule, "threshold": float(threshold), "how": "fixed by --threshold",
                "source": "--threshold"}
    same_rule = (new.aggregate, new.vote_fraction) == (own.aggregate, own.vote_fraction)
    if target_specificity is None and same_rule and card.stored_threshold is not None \
            and keep_model_threshold:
        return {**rule, "threshold": card.stored_threshold,
                "how": card.threshold_method or "stored in the model", "source": "model"}
    data = card.fits(load_split(dataset_dir / SPLIT_FILES[split]))
    prob, _ = predict_segments(model, data, device, autocast=autocast)
    chosen, how = choose_threshold(
        np.isin(data.file_label, card.positive_indices),
        recording_scores(data.file_index, prob, data.recordings, new.aggregate,
                         new.vote_fraction),
        target_specificity, split)
    return {**rule, "threshold": chosen, "how": how, "split": split,
            "source": f"chosen on {split} of {dataset_dir}"}


# --- `leakhunter evaluate` ------------------------------------------------------------------

def evaluate(model_path: str | Path, dataset_dir: str | Path, cfg: EvalConfig = EvalConfig(),
             out_dir: str | Path | None = None, device: str = "auto") -> dict[str, Any]:
    """Evaluate a model file on a split; write the report, predictions and plots.

    Scores with the decision rule the model carries (chosen by ``train`` on VALIDATION, or
    by ``calibrate``). ``cfg.threshold``, ``cfg.target_specificity``, ``cfg.aggregate`` and
    ``cfg.vote_fraction`` are what-if analyses (see :func:`decision_rule`; a new threshold
    is chosen on VALIDATION, never on the split being evaluated): reported in
    ``report["decision"]`` with the rule's source, never written into the model, which is
    only read. Returns the report (also ``report.json``), written to ``out_dir`` (default:
    ``eval-<split>`` beside the model, ``eval-<split>-whatif`` for a what-if).
    Raises :class:`DatasetError` / :class:`CheckpointError` with one clear reason.
    """
    model_path, dataset_dir = Path(model_path), Path(dataset_dir)
    choice = devices.resolve(device, "evaluate")
    dev = choice.device
    model, card = load_model(model_path, dev)
    amp = autocast(resolve_amp("auto", dev), dev)  # as predict scores
    classes, positive = list(card.classes), card.positive_indices
    data = card.fits(load_split(dataset_dir / SPLIT_FILES[cfg.split]))
    log.info("%s: %d recordings, %d segments, %s; model on %s", cfg.split, data.recordings,
             data.segments, data.place(dev), choice.describe())
    if card.stored_threshold is None and cfg.threshold is None:
        log.warning("%s carries no threshold (predict would use %g); choosing one on "
                    "VALIDATION for this report only: `leakhunter calibrate` writes a "
                    "model with it", model_path, card.rule.threshold)
    rule = decision_rule(model, card, dataset_dir, dev, threshold=cfg.threshold,
                         target_specificity=cfg.target_specificity, aggregate=cfg.aggregate,
                         vote_fraction=cfg.vote_fraction, class_aggregate=cfg.class_aggregate,
                         autocast=amp)
    threshold, vote_fraction = rule["threshold"], rule["vote_fraction"]
    started = time.perf_counter()
    prob, logits = predict_segments(model, data, dev, autocast=amp)
    inference_s = time.perf_counter() - started

    seg_truth = np.isin(data.label, positive)
    rec_truth = np.isin(data.file_label, positive)
    scores = recording_scores(data.file_index, prob, data.recordings, rule["aggregate"],
                              vote_fraction)
    votes = vote_fractions(data.file_index, prob, data.recordings, threshold)
    mean_prob = np.bincount(data.file_index, weights=prob, minlength=data.recordings) / \
        np.maximum(np.bincount(data.file_index, minlength=data.recordings), 1)
    decided = scores >= threshold
    report = {
        "model": {"path": str(model_path), "epoch": card.meta.get("epoch"),
                  "class_names": classes, "positive": list(card.positive), "task": card.task},
        "dataset": {"path": str(dataset_dir), "split": cfg.split,
                    "recordings": data.recordings, "segments": data.segments,
                    # shorter than one segment, zero-padded to one by build
                    "padded": int(data.file_padded.sum()) if data.file_padded is not None
                    else 0},
        "decision": {**rule, "what_if": rule["source"] != "model" or rule["class_aggregate"]
                     != card.rule.class_aggregate},
        "segments": {**binary_scores(seg_truth, prob >= threshold),
                     **_aucs(seg_truth, prob)},
        "recordings": {**binary_scores(rec_truth, decided), **_aucs(rec_truth, scores)},
        "inference_s": inference_s,
    }
    predicted_class = logits.argmax(axis=1)
    rec_class = class_mean = None
    if card.multiclass:
        class_prob = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        rec_class, class_mean = recording_classes(data.file_index, class_prob,
                                                  data.recordings, rule["class_aggregate"])
        report["classes"] = {
            "aggregate": rule["class_aggregate"],
            "recordings": _class_report(data.file_label, rec_class, classes),
            "segments": _class_report(data.label, predicted_class, classes)}
    wrong = np.flatnonzero(decided != rec_truth)
    report["misclassified"] = [
        {"path": data.paths[i], "sensor_id": data.sensors[i],
         "true_label": classes[data.file_label[i]], "score": float(scores[i]),
         "vote_fraction": float(votes[i])} for i in wrong]

    stats = familiarity.stats_of(card.familiarity, str(model_path))
    familiar = familiarity.split_familiarity(stats, model, data, dev, autocast=amp)
    report["familiarity"] = None if familiar is None else {
        "method": familiarity.describe(stats), "unfamiliar": int(familiar[1].sum()),
        "recordings": data.recordings}

    # a what-if never replaces the evaluation with the model's own rule
    whatif = "-whatif" if report["decision"]["what_if"] else ""
    out = Path(out_dir) if out_dir else \
        model_path.parent / f"eval-{cfg.split.lower()}{whatif}"
    out.mkdir(parents=True, exist_ok=True)
    _write_predictions(out / "predictions.csv", data, classes, rec_truth, mean_prob, votes,
                       scores, decided, rec_class, class_mean, familiar)
    if cfg.segments:
        _write_segments(out / "segments.csv", data, classes, prob, predicted_class)
    confusion = np.array([[report["recordings"]["tp"], report["recordings"]["fn"]],
                          [report["recordings"]["fp"], report["recordings"]["tn"]]])
    report["plots"] = [str(p) for p in write_evaluation_plots(
        out, segment_truth=seg_truth, segment_score=prob, recording_truth=rec_truth,
        recording_score=scores, recording_vote_fraction=votes, threshold=threshold,
        sweep=threshold_sweep(rec_truth, scores), confusion=confusion,
        confusion_labels=["LEAK", "NO LEAK"], split=cfg.split,
        class_confusion=None if rec_class is None else
        np.array(report["classes"]["recordings"]["confusion"]), class_labels=classes,
        formats=("png", "svg") if cfg.svg else ("png",))]
    safe_write.write_json(out / "report.json", report)
    return report


def _aucs(truth: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC and PR-AUC (average precision); None when only one class is present."""
    if truth.all() or not truth.any():
        return {"roc_auc": None, "pr_auc": None}
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"roc_auc": float(roc_auc_score(truth, score)),
            "pr_auc": float(average_precision_score(truth, score))}


def _class_report(truth: np.ndarray, predicted: np.ndarray,
                  classes: list[str]) -> dict[str, Any]:
    """Accuracy, scikit-learn's per-class precision/recall/F1/support report, and the
    confusion matrix (rows true, columns predicted, in the order of ``classes``) of
    whatever ``truth`` and ``predicted`` count: recordings or segments."""
    from sklearn.metrics import classification_report, confusion_matrix

    labels = list(range(len(classes)))
    return {"count": int(len(truth)), "accuracy": float(np.mean(truth == predicted)),
            "report": classification_report(truth, predicted, labels=labels,
                                            target_names=classes, output_dict=True,
                                            zero_division=0),
            "confusion": confusion_matrix(truth, predicted, labels=labels).tolist()}


def _write_predictions(path: Path, data: SplitData, classes: list[str], truth: np.ndarray,
                       mean_prob: np.ndarray, votes: np.ndarray, scores: np.ndarray,
                       decided: np.ndarray, rec_class: np.ndarray | None = None,
                       class_mean: np.ndarray | None = None,
                       familiar: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """One row per recording; multi-class adds ``predicted_class`` and ``p_<CLASS>`` (mean
    class probabilities), as ``predict`` writes them; then ``familiarity`` and ``status``
    (``unfamiliar`` or ``ok``; both empty for a model without familiarity statistics)."""
    multi = rec_class is not None and class_mean is not None
    with safe_write.writing(path, "writing predictions") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "sensor_id", "true_label", "leak_probability", "vote_fraction",
                    "score", "decision", "correct"]
                   + (["predicted_class", *[f"p_{c}" for c in classes]] if multi else [])
                   + ["familiarity", "status"])
        for i in range(data.recordings):
            extra = [classes[rec_class[i]], *[f"{p:.6f}" for p in class_mean[i]]] \
                if multi else []
            w.writerow([data.paths[i], data.sensors[i], classes[data.file_label[i]],
                        f"{mean_prob[i]:.6f}", f"{votes[i]:.6f}", f"{scores[i]:.6f}",
                        "LEAK" if decided[i] else "NO LEAK", bool(decided[i] == truth[i]),
                        *extra, *_familiar_cells(familiar, i)])


def _familiar_cells(familiar: tuple[np.ndarray, np.ndarray] | None, i: int) -> list[str]:
    if familiar is None:
        return ["", ""]
    return [f"{familiar[0][i]:.4f}", "unfamiliar" if familiar[1][i] else "ok"]


def _write_segments(path: Path, data: SplitData, classes: list[str], prob: np.ndarray,
                    predicted: np.ndarray) -> None:
    starts = np.zeros(data.segments)
    first = np.concatenate([[0], np.flatnonzero(np.diff(data.file_index)) + 1])
    for lo, hi in zip(first, list(first[1:]) + [data.segments]):
        starts[lo:hi] = np.arange(hi - lo) * data.feature.segment_hop / data.feature.sample_rate
    with safe_write.writing(path, "writing segment scores") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "start_s", "leak_probability", "top_class", "true_label"])
        for j in range(data.segments):
            w.writerow([data.paths[data.file_index[j]], f"{starts[j]:.3f}", f"{prob[j]:.6f}",
                        classes[predicted[j]], classes[data.label[j]]])
