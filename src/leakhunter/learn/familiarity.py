"""Familiarity: how well a recording fits the data a model was trained on.

Method (chosen by measurement, see ``benchmarks/familiarity.py`` and the README): the
Mahalanobis distance of each segment's penultimate embedding (:meth:`LeakCNN.embed`,
``[dense]``) to the nearest class mean of the training segments, under one covariance shared
by the classes (shrunk towards its diagonal so it stays invertible); a recording's distance
is the mean over its segments. Its **familiarity** is the share of VALIDATION recordings at
least as far from the training data, in [0, 1]; a recording farther than the
``1 - quantile`` quantile of the validation recordings' distances (``quantile`` 0.01: the
farthest 1 %) gets ``status=unfamiliar``. It is still judged; the flag says the judgement
rests on data unlike the training data.

The statistics are computed by ``train`` when it writes ``best.pt`` and stored there as
plain tensors and values (``state["familiarity"]``), so ``weights_only`` loading keeps
working; a model written before them has none and its figure is left empty.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch

from ..dataset.segments import SplitData
from ..model import LeakCNN

log = logging.getLogger(__name__)

METHOD = "mahalanobis-embedding"
QUANTILE = 0.01  # validation recordings flagged by construction: the farthest 1 %
MAX_FIT_SEGMENTS = 8192  # training segments the statistics are fitted on (seeded sample)
SHRINKAGE = 0.05  # covariance = (1 - s) * sample + s * its diagonal: invertible, stable


@torch.no_grad()
def embeddings(model: LeakCNN, data: SplitData, indices: np.ndarray, device: torch.device,
               batch_size: int = 256,
               autocast: AbstractContextManager | None = None) -> torch.Tensor:
    """float64 penultimate embeddings ``[len(indices), dense]`` (on the CPU) of the given
    segments of ``data``, in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    parts = []
    for lo in range(0, len(indices), batch_size):
        x = data.batch(indices[lo:lo + batch_size]).to(device)
        with autocast or nullcontext():
            parts.append(model.embed(x).float())
    model.train(was_training)
    return torch.cat(parts).double().cpu()  # sync


def segment_distances(stats: dict[str, Any], embedding: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance ``[B]`` of embeddings ``[B, D]`` to the nearest class
    mean, computed in float64 wherever the embeddings are."""
    means = stats["class_means"].to(embedding.device, torch.float64)  # [C, D]
    precision = stats["precision"].to(embedding.device, torch.float64)  # [D, D]
    diff = embedding.double()[:, None, :] - means[None, :, :]  # [B, C, D]
    return torch.einsum("bcd,de,bce->bc", diff, precision, diff).min(dim=1).values


def fit(model: LeakCNN, train: SplitData, validation: SplitData, device: torch.device,
        seed: int = 0, autocast: AbstractContextManager | None = None) -> dict[str, Any]:
    """The statistics stored in ``best.pt``: class means ``[C, D]`` and shared precision
    ``[D, D]`` of up to :data:`MAX_FIT_SEGMENTS` training segments' embeddings, and the
    sorted distances ``[R]`` of the validation recordings with the threshold distance at
    their ``1 - QUANTILE`` quantile. Plain tensors (float32) and values only."""
    rng = np.random.default_rng([seed, 7])
    n = train.segments
    pick = np.sort(rng.choice(n, size=min(n, MAX_FIT_SEGMENTS), replace=False))
    emb = embeddings(model, train, pick, device, autocast=autocast)
    labels = torch.from_numpy(train.label[pick])
    classes = torch.unique(labels)
    means = torch.zeros(len(train.labels), emb.shape[1], dtype=torch.float64)
    centred = torch.empty_like(emb)
    for c in classes.tolist():
        rows = labels == c
        means[c] = emb[rows].mean(dim=0)
        centred[rows] = emb[rows] - means[c]
    cov = centred.T @ centred / max(len(emb) - len(classes), 1)
    diag = torch.diag(torch.diag(cov))
    cov = (1 - SHRINKAGE) * cov + SHRINKAGE * diag
    cov += torch.eye(cov.shape[0], dtype=torch.float64) * 1e-6 * max(
        float(torch.diag(cov).mean()), 1e-12)  # a dead ReLU unit has zero variance
    present = means[classes]  # classes absent from the sample have no mean
    stats = {"method": METHOD, "class_means": present.float(),
             "precision": torch.linalg.inv(cov).float(), "quantile": QUANTILE,
             "fit_segments": int(len(pick)), "reference_split": validation.split}
    distances = recording_distances(stats, model, validation, device, autocast=autocast)
    stats["reference"] = torch.from_numpy(np.sort(distances)).float()
    stats["threshold"] = float(np.quantile(distances, 1.0 - QUANTILE))
    return stats


def recording_distances(stats: dict[str, Any], model: LeakCNN, data: SplitData,
                        device: torch.device,
                        autocast: AbstractContextManager | None = None) -> np.ndarray:
    """Mean segment distance of each recording of ``data``, ``[R]`` float64."""
    seg = np.empty(data.segments)
    step = 4096
    for lo in range(0, data.segments, step):
        idx = np.arange(lo, min(lo + step, data.segments))
        seg[lo:lo + len(idx)] = segment_distances(
            stats, embeddings(model, data, idx, device, autocast=autocast)).numpy()
    return mean_per_recording(data.file_index, seg, data.recordings)


def mean_per_recording(file_index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(file_index, weights=values, minlength=n) / \
        np.maximum(np.bincount(file_index, minlength=n), 1)


def familiarity(stats: dict[str, Any], distance: float | np.ndarray) -> np.ndarray:
    """Share of the validation recordings whose distance is at least ``distance``."""
    ref = stats["reference"].double().numpy()
    d = np.asarray(distance, dtype=np.float64)
    return (ref.size - np.searchsorted(ref, d, side="left")) / max(ref.size, 1)


def unfamiliar(stats: dict[str, Any], distance: float | np.ndarray) -> np.ndarray:
    """Whether a recording at ``distance`` is farther than the stored threshold."""
    return np.asarray(distance, dtype=np.float64) > stats["threshold"]


def stats_of(meta: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The model's statistics, or None with a one-line note for a model without them."""
    stats = meta.get("familiarity")
    if stats is None:
        log.info("%s carries no familiarity statistics (trained before they were stored); "
                 "the familiarity figure is left empty", where)
    return stats


def describe(stats: dict[str, Any]) -> str:
    return (f"{stats['method']}: unfamiliar beyond the distance of the farthest "
            f"{stats['quantile']:.0%} of {stats['reference_split']} recordings "
            f"({stats['threshold']:.1f})")


def split_familiarity(stats: dict[str, Any] | None, model: LeakCNN, data: SplitData,
                      device: torch.device,
                      autocast: AbstractContextManager | None = None
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per recording of ``data``: familiarity ``[R]`` and the unfamiliar flag ``[R]``, or
    None when the model has no statistics (``evaluate``'s extra column)."""
    if stats is None:
        return None
    d = recording_distances(stats, model, data, device, autocast=autocast)
    return familiarity(stats, d), unfamiliar(stats, d)


def summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of the statistics (for ``model_meta.json``)."""
    return {k: v for k, v in stats.items() if not isinstance(v, torch.Tensor)}
