"""Per-round figures of a learn run: ``learn_report.json`` and ``learn.png``.

Each model (the parent as round 0, then every round) is scored per recording, with the
decision rule it carries, on the new site's TESTING split and on the old site's TESTING
split (the forgetting check): accuracy, F1, specificity, sensitivity, and the share of
recordings it finds unfamiliar.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..dataset.segments import SplitData
from ..model import familiarity
from ..model.card import load_model
from ..model.metrics import binary_scores, recording_scores
from ..model.scoring import predict_segments
from ..runtime import safe_write
from ..runtime.figures import figure, save

METRICS = ("accuracy", "f1", "specificity", "sensitivity")


def site_scores(model_path: Path, data: SplitData | None, device: torch.device,
                autocast: AbstractContextManager | None = None) -> dict[str, Any] | None:
    """Per-recording scores of the model in ``model_path`` on ``data`` with its own rule;
    None without data."""
    if data is None:
        return None
    model, card = load_model(model_path, device)
    rule = card.rule
    prob, _ = predict_segments(model, data, device, autocast=autocast)
    scores = recording_scores(data.file_index, prob, data.recordings, rule.aggregate,
                              rule.vote_fraction)
    result = binary_scores(np.isin(data.file_label, card.positive_indices),
                           scores >= rule.threshold)
    familiar = familiarity.split_familiarity(card.familiarity, model, data, device,
                                             autocast=autocast)
    return {**{k: result[k] for k in (*METRICS, "tp", "tn", "fp", "fn")},
            "recordings": data.recordings, "threshold": float(rule.threshold),
            "unfamiliar": None if familiar is None else float(familiar[1].mean())}


def write_report(run: Path, report: dict[str, Any]) -> Path:
    """``learn_report.json`` and ``learn.png`` in ``run``; returns the plot's path."""
    safe_write.write_json(run / "learn_report.json", report)
    return plot(report, run / "learn.png")


def plot(report: dict[str, Any], out: Path) -> Path:
    """Per round (0 = the parent): the four per-recording metrics on the new site's test
    split (left) and on the old site's (right)."""
    rows = [{"round": 0, **report["parent"]}] + report["rounds"]
    fig, axes = figure(size=(10.0, 3.8), ncols=2)
    colours = dict(zip(METRICS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for ax, key, title in ((axes[0], "new_test", "new site, TESTING"),
                           (axes[1], "old_test", "old site, TESTING (forgetting)")):
        x = [r["round"] for r in rows if r.get(key)]
        for metric in METRICS:
            y = [r[key][metric] for r in rows if r.get(key)]
            ax.plot(x, y, marker="o", lw=2, color=colours[metric], label=metric)
        if not x:
            ax.text(0.5, 0.5, "no labelled test split", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set(title=title, xlabel="round (0 = parent model)", ylabel="per recording",
               ylim=(0, 1.03), xticks=[r["round"] for r in rows])
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    out.parent.mkdir(parents=True, exist_ok=True)
    save(fig, out, "png")
    fig.clear()
    return out
