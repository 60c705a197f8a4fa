"""The leak classifier: a compact 2-D CNN over one long segment's log-mel.

Input ``[B, n_mels, frames]`` (dB, as the front-end writes it); output logits
``[B, n_classes]`` for binary tasks, ``[B, n_classes + 1]`` for multi-class tasks, whose last
column is the auxiliary leak-vs-rest logit. :meth:`LeakCNN.leak_probability` turns either
into the probability that the segment is a leak, so nothing downstream needs to know which
index is LEAK.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
        nn.MaxPool2d(2, ceil_mode=True),  # 32 x 7 -> 16 x 4 -> 8 x 2 -> 4 x 1
    )


class LeakCNN(nn.Module):
    """Conv blocks of width ``width * 2**i``, pooled (``cfg.pool``: each channel's mean and
    maximum, or the map flattened), a dense layer, dropout, and the heads.

    ``positive``: indices of the classes that count as a leak. The per-band input
    normalisation (``norm_mean``, ``norm_std``, shape ``[n_mels]``) is part of the state, so
    a checkpoint carries the statistics of the data it was trained on.
    """

    def __init__(self, n_mels: int, frames: int, n_classes: int, positive: list[int],
                 cfg: ModelConfig = ModelConfig()):
        super().__init__()
        self.n_classes = n_classes
        self.multiclass = n_classes > 2
        self.register_buffer("norm_mean", torch.zeros(n_mels))
        self.register_buffer("norm_std", torch.ones(n_mels))
        self.register_buffer("positive_mask", torch.zeros(n_classes, dtype=torch.bool),
                             persistent=False)
        self.positive_mask[positive] = True
        widths = [1] + [cfg.width * 2 ** i for i in range(cfg.blocks)]
        self.features = nn.Sequential(*(_block(a, b) for a, b in zip(widths, widths[1:])))
        self.pooled = cfg.pool == "avg+max"
        if self.pooled:
            flat = 2 * widths[-1]  # each channel's mean and maximum over the last map
        else:
            with torch.no_grad():
                flat = self.features(torch.zeros(1, 1, n_mels, frames)).numel()
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(flat, cfg.dense), nn.ReLU(True),
            nn.Dropout(cfg.dropout), nn.Linear(cfg.dense, n_classes + int(self.multiclass)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.from_embedding(self.embed(mel))

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """The penultimate representation ``[B, dense]`` (after the dense layer's ReLU):
        what familiarity statistics describe (:mod:`leakhunter.model.familiarity`)."""
        x = (mel - self.norm_mean[:, None]) / self.norm_std[:, None]
        x = x.unsqueeze(1)
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.features(x)
        if self.pooled:  # [B, C, m, f] -> [B, 2C]: where in the map no longer matters
            x = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.head[:-2](x)

    def from_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        """The :meth:`forward` output of an :meth:`embed` output."""
        return self.head[-2:](embedding)

    def class_logits(self, out: torch.Tensor) -> torch.Tensor:
        """The ``[B, n_classes]`` class logits of a :meth:`forward` output."""
        return out[:, : self.n_classes]

    def leak_probability(self, out: torch.Tensor) -> torch.Tensor:
        """``[B]`` probability of a leak: the positive classes' softmax mass (binary), or
        the auxiliary leak-vs-rest head (multi-class)."""
        if self.multiclass:
            return torch.sigmoid(out[:, -1].float())
        probs = torch.softmax(out[:, : self.n_classes].float(), dim=1)
        return probs[:, self.positive_mask].sum(dim=1)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-band mean and standard deviation (dB) of the training inputs."""
        self.norm_mean.copy_(mean)
        self.norm_std.copy_(std.clamp_min(1e-3))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
