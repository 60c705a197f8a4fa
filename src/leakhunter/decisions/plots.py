"""Evaluation plots, written as files (PNG, SVG on request): ROC, precision-recall,
confusion, threshold sweep and vote fractions.

matplotlib and scikit-learn are imported inside the functions: importing them costs time at
CLI start-up, and only ``evaluate`` needs them. Figures come from
:mod:`leakhunter.runtime.figures` (an Agg canvas, no pyplot; files replaced whole).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.figures import LEAK, NO_LEAK, RECORDINGS, SEGMENTS, figure, save


def _formats(formats: tuple[str, ...]) -> list[str]:
    """Lower-case, dot-less, de-duplicated formats; ValueError for one matplotlib lacks
    (checked before anything is drawn, so a typo writes nothing)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    supported = FigureCanvasAgg.get_supported_filetypes()
    out = list(dict.fromkeys(f.lower().lstrip(".") for f in formats))
    bad = [f for f in out if f not in supported]
    if bad or not out:
        raise ValueError(f"unsupported plot format(s) {bad or formats}; "
                         f"choose from {sorted(supported)}")
    return out


def _pair(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truth as bool and score as float, flattened; pairs with a non-finite score dropped
    (sklearn refuses NaN, and one bad score should not cost the whole plot)."""
    t = np.asarray(truth, dtype=bool).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if t.shape != s.shape:
        raise ValueError(f"truth has {t.size} values but score has {s.size}")
    keep = np.isfinite(s)
    return t[keep], s[keep]


def _both_classes(t: np.ndarray) -> bool:
    return bool(t.any() and not t.all())


def _roc(fig: Any, split: str, pairs: list[tuple[str, str, np.ndarray, np.ndarray]]) -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    ax = fig.axes[0]
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    for name, colour, t, s in pairs:
        if _both_classes(t):  # with one class, one axis of the ROC is 0/0: nothing to draw
            fpr, tpr, _ = roc_curve(t, s)
            ax.plot(fpr, tpr, color=colour, lw=2,
                    label=f"{name} (n={t.size}, AUC {roc_auc_score(t, s):.3f})")
        else:
            ax.plot([], [], color=colour, lw=2, label=f"{name} (n={t.size}, AUC n/a)")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate (1 − specificity)",
           ylabel="true positive rate (sensitivity)", title=f"ROC — {split.upper()}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def _pr(fig: Any, split: str, pairs: list[tuple[str, str, np.ndarray, np.ndarray]]) -> None:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    ax = fig.axes[0]
    for name, colour, t, s in pairs:
        if t.any():  # without a leak, recall is 0/0 and the curve means nothing
            precision, recall, _ = precision_recall_curve(t, s)
            ap = f"AP {average_precision_score(t, s):.3f}" if _both_classes(t) else "AP n/a"
            ax.plot(recall, precision, color=colour, lw=2, label=f"{name} (n={t.size}, {ap})")
        else:
            ax.plot([], [], color=colour, lw=2, label=f"{name} (n={t.size}, AP n/a)")
        # a classifier that guesses has precision equal to the leak share
        ax.axhline(t.mean() if t.size else 0.0, color=colour, ls=":", lw=1,
                   label=f"{name} leak prevalence {t.mean() if t.size else 0.0:.2f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall (sensitivity)", ylabel="precision",
           title=f"Precision–recall — {split.upper()}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")


def _confusion(fig: Any, split: str, confusion: np.ndarray, labels: list[str],
               what: str = "recordings") -> None:
    m = np.asarray(confusion, dtype=np.int64)
    n = m.shape[0]
    if m.ndim != 2 or m.shape != (n, n) or len(labels) != n:
        raise ValueError(f"confusion must be square and match {len(labels)} labels, "
                         f"got shape {m.shape}")
    rows = m.sum(axis=1, keepdims=True)
    # colour by row share, so a rare class is as readable as a common one
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=float), where=rows > 0)
    ax = fig.axes[0]
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    small = "small" if n > 3 else "medium"
    for i in range(n):
        for j in range(n):
            pct = f"{100 * share[i, j]:.1f}%" if rows[i, 0] else "—"
            ax.text(j, i, f"{m[i, j]}\n{pct}", ha="center", va="center", fontsize=small,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, rotation=30 if n > 3 else 0,
                  ha="right" if n > 3 else "center", fontsize=small)
    ax.set_yticks(range(n), labels, fontsize=small)
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion, {what} — {split.upper()}")


def _sweep(fig: Any, split: str, sweep: dict[str, np.ndarray], threshold: float) -> None:
    ax = fig.axes[0]
    x = np.asarray(sweep["threshold"], dtype=float)
    order = np.argsort(x)
    for key, colour in (("f1", "tab:purple"), ("sensitivity", LEAK), ("specificity", NO_LEAK)):
        if key in sweep:
            ax.plot(x[order], np.asarray(sweep[key], dtype=float)[order], color=colour, lw=2,
                    label=key)
    ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set(ylim=(0, 1.02), xlabel="threshold", ylabel="per-recording metric",
           title=f"Threshold sweep — {split.upper()}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")


def _votes(fig: Any, split: str, truth: np.ndarray, fraction: np.ndarray) -> None:
    t, f = _pair(truth, fraction)
    ax = fig.axes[0]
    bins = np.linspace(0.0, 1.0, 21)
    for mask, name, colour in ((t, "leak", LEAK), (~t, "no leak", NO_LEAK)):
        ax.hist(np.clip(f[mask], 0.0, 1.0), bins=bins, color=colour, alpha=0.5,
                edgecolor=colour, label=f"{name} (n={int(mask.sum())})")
    ax.set(xlim=(0, 1), xlabel="share of segments voting leak", ylabel="recordings",
           title=f"Vote fractions — {split.upper()}")
    ax.legend(loc="upper center")


def write_evaluation_plots(out_dir: Path, *, segment_truth: np.ndarray,
                           segment_score: np.ndarray, recording_truth: np.ndarray,
                           recording_score: np.ndarray, recording_vote_fraction: np.ndarray,
                           threshold: float, sweep: dict[str, np.ndarray],
                           confusion: np.ndarray, confusion_labels: list[str], split: str,
                           formats: tuple[str, ...] = ("png",),
                           class_confusion: np.ndarray | None = None,
                           class_labels: list[str] | None = None) -> list[Path]:
    """Write ``roc``, ``pr``, ``confusion``, ``threshold_sweep`` and ``vote_fractions`` in
    ``out_dir`` (created if missing), once per format in ``formats``; return the paths
    written, plot by plot, formats in the order given.

    Truths are bool (True = leak); scores lie in [0, 1]; pairs whose score is not finite
    are left out. ``sweep`` holds equal-length arrays ``threshold`` plus any of ``f1``,
    ``sensitivity``, ``specificity``. ``confusion`` is square (rows true, columns
    predicted) in the order of ``confusion_labels``: the leak decision per recording. With
    ``class_confusion`` (multi-class: per recording, in the order of ``class_labels``) also
    ``confusion_classes``. A truth with one class only draws no
    ROC curve and reports "AUC n/a" / "AP n/a" instead of raising. ValueError for an
    unknown format (before anything is written) or mismatched shapes.
    """
    fmts = _formats(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = [("segments", SEGMENTS, *_pair(segment_truth, segment_score)),
             ("recordings", RECORDINGS, *_pair(recording_truth, recording_score))]
    drawers = {
        "roc": lambda fig: _roc(fig, split, pairs),
        "pr": lambda fig: _pr(fig, split, pairs),
        "confusion": lambda fig: _confusion(fig, split, confusion, confusion_labels,
                                            "leak decision per recording"),
        "threshold_sweep": lambda fig: _sweep(fig, split, sweep, threshold),
        "vote_fractions": lambda fig: _votes(fig, split, recording_truth,
                                             recording_vote_fraction),
    }
    if class_confusion is not None:
        drawers["confusion_classes"] = lambda fig: _confusion(
            fig, split, class_confusion, class_labels or [], "class per recording")
    written = []
    with warnings.catch_warnings():  # sklearn warns on the degenerate cases handled above
        warnings.simplefilter("ignore")
        for name, draw in drawers.items():
            fig, _ = figure()
            draw(fig)
            written += [save(fig, out_dir / f"{name}.{fmt}", fmt) for fmt in fmts]
            fig.clear()  # not registered with pyplot: clearing frees it, no close needed
    return written
