"""A model's normalisation statistics re-estimated on a new site (AdaBN, Li et al. 2016).

A model moved to another site sees other background levels and spectra: its per-band input
normalisation (mean and standard deviation of each mel band, dB) and the running statistics
of its batch-norm layers describe the old site, so its probabilities shift. Re-estimating
these statistics on the new site's recordings, labels not needed, leaves every learnt
weight as it is and corrects much of that shift.

``learn --unlabelled`` judges the new recordings with such an adapted copy of the current
model, so the pseudo-labels come from a model that sees the new site on its own scale; on
the README's site B this cut the confident wrong decisions on 58 training recordings from
21 to 7. The fine-tuning still starts from the current model itself: with the new site's
statistics alone the old site's F1 fell from 0.974 to 0.714, while fine-tuning on new and
replayed segments moves the batch-norm statistics towards both sites.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch

from ..dataset.segments import SplitData
from ..model.cnn import LeakCNN

log = logging.getLogger(__name__)

BATCH = 512  # segments per forward pass while the batch-norm statistics accumulate


@torch.no_grad()
def adapted_copy(model: LeakCNN, data: SplitData, device: torch.device) -> LeakCNN:
    """A copy of ``model`` (``model`` itself is not changed) whose input normalisation is
    the band mean and standard deviation of every segment in ``data``, and whose batch-norm
    running mean and variance are the averages of the batch statistics over ``data`` in
    batches of :data:`BATCH` segments (``momentum=None``), in evaluation mode."""
    adapted = copy.deepcopy(model)
    adapted.set_normalisation(*(s.to(device) for s in data.band_statistics()))
    norms = [m for m in adapted.modules()
             if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over every batch below
    adapted.train()  # batch norm updates its statistics; dropout comes after the last one
    for lo in range(0, data.segments, BATCH):
        adapted(data.batch(np.arange(lo, min(lo + BATCH, data.segments))).to(device).float())
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    log.info("normalisation statistics re-estimated on %d new-site segments (%s)",
             data.segments, data.path.name)
    return adapted.eval()
