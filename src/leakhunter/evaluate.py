"""Scoring a model on a split: batched segment probabilities, votes per recording, metrics.

Segments of many recordings go through the model together in large batches; they are then
regrouped per recording with the dataset's file index. A recording is a leak when at least
``vote_fraction`` of its segments have a leak probability at or above the threshold. The
validation pass inside ``train`` uses exactly this code.
"""

from __future__ import annotations

import csv
import json
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint, run_files
from .config import EvalConfig, to_dict
from .dataset.segments import SplitData, load_split
from .dataset.store import SPLIT_FILES
from .errors import DatasetError
from .metrics import (binary_scores, choose_threshold, recording_scores, threshold_sweep,
                      vote_fractions)
from .model import LeakCNN, load_model
from .plots import write_evaluation_plots
from .precision import autocast, resolve_amp
from .safe_write import writes


@torch.no_grad()
def predict_segments(model: LeakCNN, data: SplitData, device: torch.device,
                     batch_size: int | None = None,
                     autocast: AbstractContextManager | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Leak probability ``[N]`` and class logits ``[N, C]`` (float32) of every segment.

    ``batch_size`` defaults to 4096 on CUDA and 256 on CPU, where larger batches ran slower
    (their activations leave the caches: 1.6 s at 512 against 1.1 s at 256 for 7,584
    segments on 2 cores).
    """
    batch_size = batch_size or (4096 if device.type == "cuda" else 256)
    was_training = model.training
    model.eval()
    leak, logits = [], []
    for lo in range(0, data.segments, batch_size):
        x = data.batch(np.arange(lo, min(lo + batch_size, data.segments))).to(device)
        with autocast or nullcontext():
            out = model(x)
        leak.append(model.leak_probability(out).float().cpu())
        logits.append(model.class_logits(out).float().cpu())
    model.train(was_training)
    return torch.cat(leak).numpy(), torch.cat(logits).numpy()


def validation_metrics(model: LeakCNN, data: SplitData, positive: list[int],
                       device: torch.device, vote_fraction: float = 0.5,
                       threshold: float = 0.5,
                       autocast: AbstractContextManager | None = None) -> dict[str, float]:
    """Loss, segment and per-recording (voted) leak metrics on a split."""
    leak, logits = predict_segments(model, data, device, autocast=autocast)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.label)))
    pos = np.isin(data.label, positive)
    seg = binary_scores(pos, leak >= threshold)
    scores = recording_scores(data.file_index, leak, data.recordings, "vote", vote_fraction)
    files = binary_scores(np.isin(data.file_label, positive), scores >= threshold)
    return {"loss": loss, "segment_accuracy": seg["accuracy"], "segment_f1": seg["f1"],
            "file_accuracy": files["accuracy"], "file_f1": files["f1"],
            "file_sensitivity": files["sensitivity"],
            "file_specificity": files["specificity"]}


# --- `leakhunter evaluate` ------------------------------------------------------------------

def evaluate(model_path: str | Path, dataset_dir: str | Path, cfg: EvalConfig = EvalConfig(),
             out_dir: str | Path | None = None, device: str = "auto") -> dict[str, Any]:
    """Evaluate ``best.pt`` on a split; write the report, predictions and plots.

    The threshold is ``cfg.threshold`` or chosen on VALIDATION (never on the split being
    evaluated, unless that is VALIDATION itself), and is stored back into the checkpoint and
    ``model_meta.json`` with how it was chosen. Returns the report (also ``report.json``).
    Raises :class:`DatasetError` / :class:`CheckpointError` with one clear reason.
    """
    model_path, dataset_dir = Path(model_path), Path(dataset_dir)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    model, meta = load_model(model_path, dev)
    amp = autocast(resolve_amp("auto", dev), dev)  # as predict scores
    classes, positive = meta["class_names"], [meta["class_names"].index(p)
                                              for p in meta["positive"]]
    vote_fraction = cfg.vote_fraction or meta["vote_fraction"]
    data = _split_for(model_path, meta, dataset_dir, cfg.split)

    if cfg.threshold is not None:
        threshold, how = cfg.threshold, "fixed by --threshold"
    else:
        val = data if cfg.split == "VALIDATION" else \
            _split_for(model_path, meta, dataset_dir, "VALIDATION")
        val_prob, _ = predict_segments(model, val, dev, autocast=amp)
        threshold, how = choose_threshold(
            np.isin(val.file_label, positive),
            recording_scores(val.file_index, val_prob, val.recordings, cfg.aggregate,
                             vote_fraction), cfg.target_specificity)
    started = time.perf_counter()
    prob, logits = predict_segments(model, data, dev, autocast=amp)
    inference_s = time.perf_counter() - started

    seg_truth = np.isin(data.label, positive)
    rec_truth = np.isin(data.file_label, positive)
    scores = recording_scores(data.file_index, prob, data.recordings, cfg.aggregate,
                              vote_fraction)
    votes = vote_fractions(data.file_index, prob, data.recordings, threshold)
    mean_prob = np.bincount(data.file_index, weights=prob, minlength=data.recordings) / \
        np.maximum(np.bincount(data.file_index, minlength=data.recordings), 1)
    decided = scores >= threshold
    report = {
        "model": {"path": str(model_path), "epoch": meta["epoch"],
                  "class_names": classes, "positive": meta["positive"], "task": meta["task"]},
        "dataset": {"path": str(dataset_dir), "split": cfg.split,
                    "recordings": data.recordings, "segments": data.segments},
        "decision": {"threshold": threshold, "how": how, "aggregate": cfg.aggregate,
                     "vote_fraction": vote_fraction},
        "segments": {**binary_scores(seg_truth, prob >= threshold),
                     **_aucs(seg_truth, prob)},
        "recordings": {**binary_scores(rec_truth, decided), **_aucs(rec_truth, scores)},
        "inference_s": inference_s,
    }
    predicted_class = logits.argmax(axis=1)
    if meta["task"] == "multiclass":
        report["classes"] = _class_report(data.label, predicted_class, classes)
    wrong = np.flatnonzero(decided != rec_truth)
    report["misclassified"] = [
        {"path": data.paths[i], "sensor_id": data.sensors[i],
         "true_label": classes[data.file_label[i]], "score": float(scores[i]),
         "vote_fraction": float(votes[i])} for i in wrong]

    out = Path(out_dir) if out_dir else model_path.parent / f"eval-{cfg.split.lower()}"
    out.mkdir(parents=True, exist_ok=True)
    _write_predictions(out / "predictions.csv", data, classes, rec_truth, mean_prob, votes,
                       scores, decided)
    if cfg.segments:
        _write_segments(out / "segments.csv", data, classes, prob, predicted_class)
    confusion = np.array([[report["recordings"]["tp"], report["recordings"]["fn"]],
                          [report["recordings"]["fp"], report["recordings"]["tn"]]])
    report["plots"] = [str(p) for p in write_evaluation_plots(
        out, segment_truth=seg_truth, segment_score=prob, recording_truth=rec_truth,
        recording_score=scores, recording_vote_fraction=votes, threshold=threshold,
        sweep=threshold_sweep(rec_truth, scores), confusion=confusion,
        confusion_labels=["LEAK", "NO LEAK"], split=cfg.split,
        formats=("png", "svg") if cfg.svg else ("png",))]
    run_files.write_json(out / "report.json", report)
    _store_decision(model_path, report["decision"])
    return report


def _split_for(model_path: Path, meta: dict[str, Any], dataset_dir: Path,
               split: str) -> SplitData:
    """A split, checked against the model: same feature config, same classes, not empty."""
    data = load_split(dataset_dir / SPLIT_FILES[split])
    if to_dict(data.feature) != meta["feature_config"]:
        raise DatasetError(f"{data.path}: built with a different feature config than "
                           f"{model_path} was trained on; rebuild the dataset with the "
                           f"model's settings (see model_meta.json)")
    if data.labels != meta["class_names"]:
        raise DatasetError(f"{data.path}: classes {', '.join(data.labels)} differ from the "
                           f"model's ({', '.join(meta['class_names'])})")
    return data


def _aucs(truth: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC and PR-AUC (average precision); None when only one class is present."""
    if truth.all() or not truth.any():
        return {"roc_auc": None, "pr_auc": None}
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"roc_auc": float(roc_auc_score(truth, score)),
            "pr_auc": float(average_precision_score(truth, score))}


def _class_report(truth: np.ndarray, predicted: np.ndarray,
                  classes: list[str]) -> dict[str, Any]:
    from sklearn.metrics import classification_report, confusion_matrix

    labels = list(range(len(classes)))
    return {"report": classification_report(truth, predicted, labels=labels,
                                            target_names=classes, output_dict=True,
                                            zero_division=0),
            "confusion": confusion_matrix(truth, predicted, labels=labels).tolist()}


@writes("path", "writing predictions")
def _write_predictions(path: Path, data: SplitData, classes: list[str], truth: np.ndarray,
                       mean_prob: np.ndarray, votes: np.ndarray, scores: np.ndarray,
                       decided: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "sensor_id", "true_label", "leak_probability", "vote_fraction",
                    "score", "decision", "correct"])
        for i in range(data.recordings):
            w.writerow([data.paths[i], data.sensors[i], classes[data.file_label[i]],
                        f"{mean_prob[i]:.6f}", f"{votes[i]:.6f}", f"{scores[i]:.6f}",
                        "LEAK" if decided[i] else "NO LEAK", bool(decided[i] == truth[i])])
    tmp.replace(path)


@writes("path", "writing segment scores")
def _write_segments(path: Path, data: SplitData, classes: list[str], prob: np.ndarray,
                    predicted: np.ndarray) -> None:
    starts = np.zeros(data.segments)
    first = np.concatenate([[0], np.flatnonzero(np.diff(data.file_index)) + 1])
    for lo, hi in zip(first, list(first[1:]) + [data.segments]):
        starts[lo:hi] = np.arange(hi - lo) * data.feature.segment_hop / data.feature.sample_rate
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "start_s", "leak_probability", "top_class", "true_label"])
        for j in range(data.segments):
            w.writerow([data.paths[data.file_index[j]], f"{starts[j]:.3f}", f"{prob[j]:.6f}",
                        classes[predicted[j]], classes[data.label[j]]])
    tmp.replace(path)


def _store_decision(model_path: Path, decision: dict[str, Any]) -> None:
    """Write the threshold (and how it was chosen) into the checkpoint and its meta file."""
    state = checkpoint.load(model_path, "model")
    state.update(threshold=decision["threshold"], threshold_method=decision["how"],
                 aggregate=decision["aggregate"], vote_fraction=decision["vote_fraction"])
    checkpoint.save(model_path, state)
    meta_path = model_path.parent / "model_meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta.update({k: v for k, v in state.items() if k in (
            "threshold", "threshold_method", "aggregate", "vote_fraction")})
        run_files.write_json(meta_path, meta)
