"""Familiarity: how well a recording fits the data a model was trained on.

Method (chosen by measurement, ``benchmarks/familiarity.py``; see the README): two
Mahalanobis distances per segment, each to the nearest class mean of the training segments
under one covariance shared by the classes (shrunk towards its diagonal so it stays
invertible):

* ``embedding``: of the penultimate embedding (:meth:`LeakCNN.embed`, ``[dense]``): what
  the network makes of the segment;
* ``input``: of the segment's per-band mean and spread over time (``[2 * n_mels]``, dB):
  what the sensor heard, before the network (a network can map strange input onto a
  familiar embedding: the real hydrophone recordings were flagged by this part only).

A recording's distances are the means over its segments. Its **familiarity** is the share
of VALIDATION recordings at least as far from the training data, the smaller of the two
shares, in [0, 1]; below ``quantile`` (0.01: fewer than 1 % of the validation recordings
are as far, by either distance; with fewer than 100 of them, farther than all) the
recording gets ``status=unfamiliar``. It is still judged; the flag says
the judgement rests on data unlike the training data.

A ``predict`` run is also judged as a whole (:func:`site_shift`): when its recordings,
together, lie farther than the validation recordings (a rank test), they come from
somewhere the model has not heard, and every one of them is flagged.

The statistics are computed by ``train`` when it writes ``best.pt`` and stored there as
plain tensors and values (``state["familiarity"]``), so ``weights_only`` loading keeps
working; a model written before them has none and its figure is left empty.
"""

from __future__ import annotations

import logging
import math
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch

from ..dataset.segments import SplitData
from .cnn import LeakCNN

log = logging.getLogger(__name__)

METHOD = "mahalanobis-embedding+input"
PARTS = ("embedding", "input")
QUANTILE = 0.01  # per part, validation recordings beyond it are flagged: the farthest 1 %
MAX_FIT_SEGMENTS = 8192  # training segments the statistics are fitted on (seeded sample)
SHRINKAGE = 0.05  # covariance = (1 - s) * sample + s * its diagonal: invertible, stable
SHIFT_P = 0.001  # a run is another site's when its distances are this unlikely (site_shift)
MIN_RUN = 8  # ... and it holds at least this many recordings


def input_features(mel: torch.Tensor) -> torch.Tensor:
    """Per-band mean and standard deviation over time, ``[B, 2 * n_mels]`` float64, of
    log-mel ``[B, n_mels, frames]``."""
    mel = mel.double()
    return torch.cat([mel.mean(dim=2), mel.std(dim=2)], dim=1)


@torch.no_grad()
def _features(model: LeakCNN, data: SplitData, indices: np.ndarray, device: torch.device,
              autocast: AbstractContextManager | None = None,
              batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings ``[n, dense]`` and input features ``[n, 2 * n_mels]`` (float64, CPU) of
    the given segments, in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    emb, inp = [], []
    for lo in range(0, len(indices), batch_size):
        x = data.batch(indices[lo:lo + batch_size]).to(device)
        with autocast or nullcontext():
            emb.append(model.embed(x).float())
        inp.append(input_features(x))
    model.train(was_training)
    return torch.cat(emb).double().cpu(), torch.cat(inp).cpu()  # sync


def mahalanobis(part: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance ``[B]`` of ``x`` ``[B, D]`` to the nearest class mean,
    in float64 wherever ``x`` is."""
    means = part["class_means"].to(x.device, torch.float64)  # [C, D]
    precision = part["precision"].to(x.device, torch.float64)  # [D, D]
    x = x.double()
    px = x @ precision  # (x - m)' P (x - m) = x'Px - 2 x'Pm + m'Pm: one [B, D] x [D, D]
    distance = ((px * x).sum(dim=1, keepdim=True) - 2.0 * px @ means.T
                + ((means @ precision) * means).sum(dim=1)[None, :])
    return distance.min(dim=1).values.clamp_min(0.0)  # rounding may leave -0.0


def segment_distances(stats: dict[str, Any], mel: torch.Tensor,
                      embedding: torch.Tensor) -> torch.Tensor:
    """Distances ``[B, 2]`` (embedding, input) of segments with log-mel ``mel``
    ``[B, n_mels, frames]`` and embeddings ``[B, dense]``."""
    return torch.stack([mahalanobis(stats["parts"]["embedding"], embedding),
                        mahalanobis(stats["parts"]["input"], input_features(mel))], dim=1)


def fit_part(x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    classes = torch.unique(labels)
    means = torch.stack([x[labels == c].mean(dim=0) for c in classes.tolist()])
    centred = x - means[torch.searchsorted(classes, labels)]
    cov = centred.T @ centred / max(len(x) - len(classes), 1)
    cov = (1 - SHRINKAGE) * cov + SHRINKAGE * torch.diag(torch.diag(cov))
    cov += torch.eye(cov.shape[0], dtype=torch.float64) * 1e-6 * max(
        float(torch.diag(cov).mean()), 1e-12)  # a dead ReLU unit has zero variance
    return {"class_means": means.float(), "precision": torch.linalg.inv(cov).float()}


def fit(model: LeakCNN, train: SplitData, validation: SplitData, device: torch.device,
        seed: int = 0, autocast: AbstractContextManager | None = None) -> dict[str, Any]:
    """The statistics stored in ``best.pt``: per part, class means ``[C, D]`` and shared
    precision ``[D, D]`` of up to :data:`MAX_FIT_SEGMENTS` training segments, the sorted
    distances ``[R]`` of the validation recordings and the threshold at their
    ``1 - QUANTILE`` quantile. Plain tensors (float32) and values only."""
    rng = np.random.default_rng([seed, 7])
    pick = np.sort(rng.choice(train.segments, size=min(train.segments, MAX_FIT_SEGMENTS),
                              replace=False))
    emb, inp = _features(model, train, pick, device, autocast)
    labels = torch.from_numpy(train.label[pick])
    stats: dict[str, Any] = {
        "method": METHOD, "quantile": QUANTILE, "fit_segments": int(len(pick)),
        "reference_split": validation.split,
        "parts": {"embedding": fit_part(emb, labels), "input": fit_part(inp, labels)}}
    distances = recording_distances(stats, model, validation, device, autocast)
    for i, name in enumerate(PARTS):
        ref = torch.from_numpy(np.sort(distances[:, i]))  # float64: compared exactly
        part = stats["parts"][name]
        part["reference"] = ref
        # beyond it, fewer than QUANTILE of the validation recordings are as far: the
        # same rule as familiarity < QUANTILE (at least the farthest one is passed)
        part["threshold"] = float(ref[len(ref) - max(1, math.ceil(QUANTILE * len(ref)))])
    return stats


def recording_distances(stats: dict[str, Any], model: LeakCNN, data: SplitData,
                        device: torch.device,
                        autocast: AbstractContextManager | None = None) -> np.ndarray:
    """Mean segment distances of each recording of ``data``, ``[R, 2]`` float64."""
    seg = np.empty((data.segments, len(PARTS)))
    step = 4096
    for lo in range(0, data.segments, step):
        idx = np.arange(lo, min(lo + step, data.segments))
        emb, inp = _features(model, data, idx, device, autocast)
        seg[lo:lo + len(idx)] = torch.stack(
            [mahalanobis(stats["parts"]["embedding"], emb),
             mahalanobis(stats["parts"]["input"], inp)], dim=1).numpy()
    counts = np.maximum(np.bincount(data.file_index, minlength=data.recordings), 1)
    return np.stack([np.bincount(data.file_index, weights=seg[:, i], minlength=data.recordings)
                     for i in range(len(PARTS))], axis=1) / counts[:, None]


def familiarity(stats: dict[str, Any], distance: np.ndarray) -> np.ndarray:
    """The smaller, over the parts, of the share of validation recordings whose distance
    is at least the recording's; ``distance`` ``[..., 2]``."""
    d = np.asarray(distance, dtype=np.float64)
    shares = []
    for i, name in enumerate(PARTS):
        ref = stats["parts"][name]["reference"].double().numpy()
        shares.append((ref.size - np.searchsorted(ref, d[..., i], side="left"))
                      / max(ref.size, 1))
    return np.minimum(*shares)


def unfamiliar(stats: dict[str, Any], distance: np.ndarray) -> np.ndarray:
    """Whether a recording at ``distance`` ``[..., 2]`` is beyond either threshold, i.e.
    its :func:`familiarity` is below the quantile."""
    # from the reference distances themselves: the stored thresholds are for reading
    return familiarity(stats, distance) < stats["quantile"]


def site_shift(stats: dict[str, Any], distance: np.ndarray) -> dict[str, Any]:
    """Whether recordings at ``distance`` ``[R, 2]``, taken together, lie farther from the
    training data than the validation recordings do: a one-sided Mann-Whitney test per
    part against the stored reference distances (normal approximation), Bonferroni over
    the parts. ``shifted`` when ``R >= MIN_RUN`` and the smaller p-value is below
    ``SHIFT_P / 2``.

    One recording of a new site can look like a familiar one (a plastic main's quiet
    night is still a quiet night), but its site's recordings together do not: on the
    README's site B the previous default flagged 4-33 % of the 76 recordings one by one,
    and the run as a whole on every seed (``benchmarks/new_site.py``)."""
    d = np.asarray(distance, dtype=np.float64).reshape(-1, len(PARTS))
    n1 = len(d)
    p_values = []
    for i, name in enumerate(PARTS):
        ref = stats["parts"][name]["reference"].double().numpy()
        n2 = ref.size
        if n1 == 0 or n2 == 0:
            p_values.append(1.0)
            continue
        # U of the run: pairs (run, reference) with the run's recording farther, ties
        # counting half: the mean of the counts strictly below and at most
        u = 0.5 * float((np.searchsorted(ref, d[:, i], side="left")
                         + np.searchsorted(ref, d[:, i], side="right")).sum())
        z = (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
        p_values.append(0.5 * math.erfc(z / math.sqrt(2)))
    p = min(p_values)
    return {"shifted": bool(n1 >= MIN_RUN and p < SHIFT_P / len(PARTS)), "p": p,
            "recordings": n1}


def stats_of(stats: dict[str, Any] | None, where: str) -> dict[str, Any] | None:
    """A model's statistics (its card's ``familiarity``) as they are; for a model without
    them, ``None`` and a one-line note naming the model file ``where``."""
    if stats is None:
        log.info("%s carries no familiarity statistics (trained before they were stored); "
                 "the familiarity figure is left empty", where)
    return stats


def describe(stats: dict[str, Any]) -> str:
    return (f"{stats['method']}: unfamiliar when fewer than {stats['quantile']:.0%} of "
            f"{stats['reference_split']} recordings are as far, by either distance")


def split_familiarity(stats: dict[str, Any] | None, model: LeakCNN, data: SplitData,
                      device: torch.device,
                      autocast: AbstractContextManager | None = None
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per recording of ``data``: familiarity ``[R]`` and the unfamiliar flag ``[R]``, or
    None when the model has no statistics (``evaluate``'s extra column)."""
    if stats is None:
        return None
    d = recording_distances(stats, model, data, device, autocast)
    return familiarity(stats, d), unfamiliar(stats, d)


def summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of the statistics (for ``model_meta.json``)."""
    return {"method": stats["method"], "quantile": stats["quantile"],
            "fit_segments": stats["fit_segments"], "reference_split": stats["reference_split"],
            "thresholds": {k: v["threshold"] for k, v in stats["parts"].items()}}
