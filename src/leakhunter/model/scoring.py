"""Running a model over segments: batched leak probabilities, and the validation figures
``train`` keeps after every epoch.

Two inputs, one model call each way:

* a dataset split (:func:`predict_segments`): every segment through the model in large
  batches, regrouped per recording afterwards by the split's file index; ``evaluate``,
  ``calibrate``, ``learn`` and ``tune`` score with it, and the validation pass inside
  ``train`` (:func:`validation_metrics`) too;
* float16 log-mel arrays of recordings being judged (:func:`score_mels`, ``predict``), with
  the familiarity distances from the same forward pass.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset.segments import SplitData
from ..runtime.amp import autocast, resolve_amp
from . import familiarity
from .card import Rule
from .cnn import LeakCNN
from .metrics import binary_scores, choose_threshold, recording_scores

MODEL_BATCH = {"cpu": 256,  # segments per forward pass: larger batches ran slower on the
               "cuda": 8192}  # CPU (their activations leave the caches)


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
        leak.append(model.leak_probability(out).float())  # stays on the device: no sync
        logits.append(model.class_logits(out).float())
    model.train(was_training)
    return torch.cat(leak).cpu().numpy(), torch.cat(logits).cpu().numpy()  # sync


def validation_metrics(model: LeakCNN, data: SplitData, positive: list[int],
                       device: torch.device, vote_fraction: float = 0.5,
                       threshold: float = 0.5,
                       autocast: AbstractContextManager | None = None,
                       target_specificity: float | None = None) -> dict[str, Any]:
    """Loss, segment and per-recording (voted) leak metrics on a split, at ``threshold``.

    Also ``"rule"``, the :class:`Rule` chosen on these recordings' voted scores (F1-best,
    or the lowest threshold reaching ``target_specificity``) by :func:`choose_threshold`,
    exactly as ``evaluate`` and ``calibrate`` choose it, and ``"how"``, the method.
    """
    leak, logits = predict_segments(model, data, device, autocast=autocast)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.label)))
    pos = np.isin(data.label, positive)
    seg = binary_scores(pos, leak >= threshold)
    scores = recording_scores(data.file_index, leak, data.recordings, "vote", vote_fraction)
    file_truth = np.isin(data.file_label, positive)
    files = binary_scores(file_truth, scores >= threshold)
    chosen, how = choose_threshold(file_truth, scores, target_specificity, data.split)
    return {"loss": loss, "segment_accuracy": seg["accuracy"], "segment_f1": seg["f1"],
            "file_accuracy": files["accuracy"], "file_f1": files["f1"],
            "file_sensitivity": files["sensitivity"],
            "file_specificity": files["specificity"],
            "rule": Rule(threshold=chosen, vote_fraction=vote_fraction, aggregate="vote"),
            "how": how}


def score_mels(model: LeakCNN, mels: list[np.ndarray], device: torch.device,
               stats: dict[str, Any] | None = None) -> list[dict[str, np.ndarray]]:
    """``leak`` (probability ``[S]``) and ``classes`` (probabilities ``[S, C]``) for each
    float16 log-mel ``[S, M, F]``: all segments together, in model batches of
    :data:`MODEL_BATCH` (bounded activations: cache-sized on CPU, large on a GPU), in the
    precision ``evaluate`` scores with. With familiarity ``stats``, also ``distance``
    ``[S, 2]`` (from the same forward pass)."""
    counts = [m.shape[0] for m in mels]
    x = torch.from_numpy(np.concatenate(mels))
    step = MODEL_BATCH[device.type]
    leak_parts, class_parts, distance_parts = [], [], []
    with torch.inference_mode(), autocast(resolve_amp("auto", device), device):
        for lo in range(0, x.shape[0], step):
            mel = x[lo:lo + step].to(device).float()
            embedding = model.embed(mel)
            out = model.from_embedding(embedding)
            leak_parts.append(model.leak_probability(out).float())
            class_parts.append(torch.softmax(model.class_logits(out).float(), dim=1))
            if stats is not None:
                distance_parts.append(familiarity.segment_distances(stats, mel,
                                                                    embedding.float()))
    leak = torch.cat(leak_parts).cpu().numpy()  # sync
    classes = torch.cat(class_parts).cpu().numpy()
    bounds = np.cumsum(counts)[:-1]
    results = [{"leak": lk, "classes": cl}
               for lk, cl in zip(np.split(leak, bounds), np.split(classes, bounds))]
    if stats is not None:
        distances = torch.cat(distance_parts).cpu().numpy()
        for result, dist in zip(results, np.split(distances, bounds)):
            result["distance"] = dist
    return results
