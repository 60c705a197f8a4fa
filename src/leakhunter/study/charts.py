"""A study's two figures: the segmentation grid as heat maps (the paper's Fig. 3) and the
model comparison as bars (its Table 2), each value a mean over folds with its sd.

Drawn with the project's figure helpers (an Agg canvas, the file moved into place when
complete), like the other plots.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PAPER_CHOICE
from ..runtime.figures import figure, save
from .summary import fold_values

MISSING = "—"  # a cell without a finished run
MISSING_COLOUR = "lightgrey"
LABELS = {"accuracy": "accuracy", "precision": "precision", "sensitivity": "sensitivity",
          "specificity": "specificity", "f1": "F1", "auc": "AUC"}


def _row(summary: list[dict[str, Any]], model: str,
         cell: tuple[float, int]) -> dict[str, Any] | None:
    for r in summary:
        if r["model"] == model and (r["long_s"], r["short_points"]) == cell and r["folds"]:
            return r
    return None


def segmentation_plot(path: Path, summary: list[dict[str, Any]], model: str,
                      long_s: list[float], short_points: list[int],
                      best: tuple[float, int] | None) -> Path:
    """Heat maps of ``model``'s mean accuracy and AUC over long segments (rows) x short
    frames (columns), each cell "mean ± sd"; cells without a finished run grey with a dash;
    ``best`` outlined."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import offset_copy

    fig, axes = figure((5.4 * 2, 0.75 * len(long_s) + 2.2), ncols=2)
    cmap = colormaps["viridis"].with_extremes(bad=MISSING_COLOUR)
    for ax, metric in zip(axes, ("accuracy", "auc")):
        mean = np.full((len(long_s), len(short_points)), np.nan)
        sd = np.full_like(mean, np.nan)
        for i, ls in enumerate(long_s):
            for j, sp in enumerate(short_points):
                r = _row(summary, model, (ls, sp))
                if r is not None:
                    mean[i, j], sd[i, j] = r[f"{metric}_mean"], r[f"{metric}_sd"]
        finite = mean[np.isfinite(mean)]
        low = float(finite.min()) if finite.size else 0.0
        high = max(float(finite.max()) if finite.size else 1.0, low + 1e-3)
        image = ax.imshow(np.ma.masked_invalid(mean), cmap=cmap, vmin=low, vmax=high,
                          aspect="auto")
        for i in range(len(long_s)):
            for j in range(len(short_points)):
                m, s = mean[i, j], sd[i, j]
                if not math.isfinite(m):
                    ax.text(j, i, MISSING, ha="center", va="center", color="dimgrey")
                    continue
                text = f"{m:.3f}\n± {s:.3f}" if math.isfinite(s) else f"{m:.3f}\n(1 fold)"
                dark = (m - low) / (high - low) < 0.55  # viridis is dark at its low end
                ax.text(j, i, text, ha="center", va="center", fontsize=7.5,
                        color="white" if dark else "black")
        marks = ((best, "tab:red", "-", 0.45, "best (by accuracy)"),
                 (PAPER_CHOICE, "magenta", "--", 0.38, "the paper's choice"))
        for cell, colour, style, half, label in marks:
            if cell is not None and cell[0] in long_s and cell[1] in short_points:
                i, j = long_s.index(cell[0]), short_points.index(cell[1])
                ax.add_patch(Rectangle((j - half, i - half), 2 * half, 2 * half, fill=False,
                                       edgecolor=colour, ls=style, lw=2.2, label=label))
        if ax.patches:  # below the axis label whatever the axes' height: 40 points down
            ax.legend(loc="upper left", bbox_to_anchor=(0, 0), fontsize=8, ncols=2,
                      frameon=False, bbox_transform=offset_copy(ax.transAxes, fig=fig,
                                                                y=-40, units="points"))
        ax.set_xticks(range(len(short_points)), [str(n) for n in short_points])
        ax.set_yticks(range(len(long_s)), [f"{x:g}" for x in long_s])
        ax.set_xlabel("short frame (points)")
        ax.set_ylabel("long segment (s)")
        ax.set_title(f"{LABELS[metric]}: mean ± sd over folds", fontsize=10)
        fig.colorbar(image, ax=ax, label=f"mean {LABELS[metric]}")
    fig.suptitle(f"Segmentation grid, {model} (grey {MISSING}: no finished run)")
    return save(fig, path, "png")


def models_plot(path: Path, runs: list[dict[str, Any]], summary: list[dict[str, Any]],
                models: list[str], cell: tuple[float, int], title: str) -> Path:
    """Bars of each model's mean accuracy and AUC (F1 when no model has an AUC) at
    ``cell``, error bars the sd over folds, each fold's value a dot."""
    has_auc = any(r is not None and math.isfinite(r["auc_mean"])
                  for r in (_row(summary, m, cell) for m in models))
    metrics = ("accuracy", "auc" if has_auc else "f1")
    fig, ax = figure((max(6.0, 1.3 * len(models) * len(metrics)), 4.8))
    width = 0.8 / len(models)
    colours = [f"C{i}" for i in range(len(models))]
    for g, metric in enumerate(metrics):
        for k, model in enumerate(models):
            x = g + (k - (len(models) - 1) / 2) * width
            r = _row(summary, model, cell)
            label = model if g == 0 else None
            if r is None or not math.isfinite(r[f"{metric}_mean"]):
                ax.bar(x, 0, width * 0.9, color=colours[k], label=label)
                ax.text(x, 0.02, "no run", rotation=90, ha="center", va="bottom",
                        fontsize=8, color="dimgrey")
                continue
            sd = r[f"{metric}_sd"]
            ax.bar(x, r[f"{metric}_mean"], width * 0.9, color=colours[k], alpha=0.8,
                   yerr=sd if math.isfinite(sd) else None, capsize=4, label=label,
                   error_kw={"lw": 1.2})
            values = list(fold_values(runs, model, cell, metric).values())
            spread = np.linspace(-width * 0.2, width * 0.2, len(values)) if len(values) > 1 \
                else np.zeros(len(values))
            ax.scatter(x + spread, values, s=14, color="black", zorder=3,
                       label="one fold" if g == 0 and k == 0 else None)
    ax.set_xticks(range(len(metrics)), [LABELS[m] for m in metrics])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("mean over folds ± sd (bars), each fold (dots)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, ncols=2)
    return save(fig, path, "png")
