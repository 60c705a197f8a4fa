"""Evaluation and training plots, written as files (PNG, SVG on request).

matplotlib and scikit-learn are imported inside the functions: importing them costs time at
CLI start-up, and only ``evaluate`` and the end of training need them. Figures are built
with the object-oriented API on an Agg canvas, so no pyplot state (and no display) is
touched. Every file is written under a temporary name and moved into place, so a reader
never sees half a plot.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DPI = 120
SIZE = (6.0, 4.5)
SEGMENTS = "tab:blue"  # one colour per level throughout, so plots read alike
RECORDINGS = "tab:orange"
LEAK = "tab:red"
NO_LEAK = "tab:green"


def _figure(size: tuple[float, float] = SIZE, ncols: int = 1) -> tuple[Any, Any]:
    """A figure on its own Agg canvas (no pyplot) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="tight")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig: Any, path: Path, fmt: str) -> Path:
    """Write ``fig`` to ``path`` in ``fmt`` through a temporary file in the same folder
    (drawn in memory first; raises ``StorageError`` when the disk fails)."""
    import io

    from ..runtime import safe_write

    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI)
    return safe_write.write_bytes(path, buffer.getbuffer(), "writing a plot",
                                  temp=path.with_name(f".{path.name}.tmp"))


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
            fig, _ = _figure()
            draw(fig)
            written += [_save(fig, out_dir / f"{name}.{fmt}", fmt) for fmt in fmts]
            fig.clear()  # not registered with pyplot: clearing frees it, no close needed
    return written


def _column(rows: list[dict[str, str]], key: str) -> np.ndarray:
    """One metrics.csv column as floats; an empty, missing or unreadable cell is NaN."""
    def value(cell: str | None) -> float:
        try:
            return float(cell) if cell not in (None, "") else np.nan
        except ValueError:
            return np.nan
    return np.array([value(r.get(key)) for r in rows], dtype=float)


def write_training_curves(metrics_csv: Path, out_path: Path) -> Path:
    """Plot a run's ``metrics.csv`` (columns of :data:`leakhunter.run_files.METRICS`) as
    one PNG at ``out_path``: train and validation loss against epoch, and validation file
    F1 and segment accuracy against epoch with the epoch of best file F1 marked. Empty
    cells are skipped (lines join across them). Returns ``out_path``."""
    with Path(metrics_csv).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    epoch = _column(rows, "epoch")
    if np.isnan(epoch).any():  # a row without an epoch still has a place: its position
        epoch = np.where(np.isnan(epoch), np.arange(1, len(rows) + 1), epoch)

    def line(ax: Any, key: str, label: str, colour: str) -> None:
        y = _column(rows, key)
        ok = np.isfinite(y)
        ax.plot(epoch[ok], y[ok], marker="o", ms=3, lw=2, color=colour, label=label)

    fig, (loss_ax, score_ax) = _figure(size=(11.0, 4.5), ncols=2)
    line(loss_ax, "train_loss", "train loss", SEGMENTS)
    line(loss_ax, "val_loss", "validation loss", RECORDINGS)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    line(score_ax, "val_file_f1", "validation file F1", RECORDINGS)
    line(score_ax, "val_segment_accuracy", "validation segment accuracy", SEGMENTS)
    f1 = _column(rows, "val_file_f1")
    if np.isfinite(f1).any():
        # the trainer's rule: highest F1, ties to the lowest validation loss
        loss = np.nan_to_num(_column(rows, "val_loss"), nan=np.inf)
        best = int(np.lexsort((loss, -np.nan_to_num(f1, nan=-np.inf)))[0])
        score_ax.axvline(epoch[best], color="grey", ls="--", lw=1)
        score_ax.plot(epoch[best], f1[best], marker="*", ms=14, color="black", ls="none",
                      label=f"best: epoch {epoch[best]:g}, F1 {f1[best]:.3f}")
    score_ax.set(ylim=(0, 1.02), xlabel="epoch", ylabel="score", title="Validation")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, score_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, out_path, "png")
    fig.clear()
    return out_path
