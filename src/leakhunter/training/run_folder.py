"""The files of a training run directory, other than checkpoints and ``best.pt``.

``metrics.csv`` (a row per epoch) and its plot ``curves.png``, TensorBoard events when
tensorboard is installed; and the rule that a run directory is never silently reused.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..runtime import safe_write
from ..runtime.figures import RECORDINGS, SEGMENTS, figure, save

log = logging.getLogger(__name__)

RUN_FILES = ("config.json", "train.log", "metrics.csv", "best.pt", "model_meta.json",
             "curves.png", "checkpoints/last.pt")
METRICS = ("epoch", "step", "train_loss", "val_loss", "val_segment_accuracy",
           "val_segment_f1", "val_file_accuracy", "val_file_f1", "lr", "epoch_s",
           "segments_per_s", "gpu_memory_peak_gib")


# what a start that failed before its first epoch leaves: nothing to resume or to lose
NOT_STARTED = ("config.json", "train.log")


def prepare(run: Path, overwrite: bool, main: bool) -> None:
    """Refuse a folder that holds a run unless ``overwrite``; then (on rank 0, ``main``)
    remove that run's files and create ``checkpoints/``. A run that stopped before its
    first epoch (only :data:`NOT_STARTED` files: no checkpoint to resume) is started
    again in place, its ``train.log`` kept and appended to."""
    existing = [name for name in RUN_FILES if (run / name).exists()]
    if existing and set(existing) <= set(NOT_STARTED) and not overwrite:
        log.info("%s: a run that stopped before its first epoch (no checkpoint): starting "
                 "again, its train.log continued", run)
        existing = [name for name in existing if name != "train.log"]
        overwrite = True
    if existing and not overwrite:
        raise InputError(f"{run}: already holds a run ({existing[0]}); use --resume {run} to "
                         f"continue it, --overwrite to replace it, or another --out")
    if main:
        for name in existing:
            (run / name).unlink()
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)


def folder_to_lock(args: dict[str, Any]) -> Path | None:
    """The folder :func:`leakhunter.training.train.train` locks, from its bound arguments: the run
    directory, except under ``torchrun`` on ranks other than 0 (rank 0 alone writes and
    locks) and for ``--resume`` of a folder that does not exist (nothing to protect; the
    missing checkpoint is reported)."""
    from .distributed import from_environment

    run = Path(args["run_dir"])
    if not from_environment().main or (args["resume"] and not run.is_dir()):
        return None
    return run


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Add one epoch's row to ``metrics.csv`` (header first when the file is new).

    The file is rewritten whole (a row per epoch: a few kilobytes), so a full disk leaves
    the previous rows intact rather than a torn last line."""
    old = path.read_bytes().decode("utf-8") if path.exists() else ""  # keeps \r\n
    fh = io.StringIO(newline="")
    writer = csv.DictWriter(fh, fieldnames=METRICS)
    if not old:
        writer.writeheader()
    writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    safe_write.write_text(path, old + fh.getvalue(), "writing the metrics")


def trim_metrics(path: Path, epochs: int) -> None:
    """Keep the rows of the first ``epochs`` epochs: a stop between writing a row and the
    checkpoint would otherwise leave a row that the resumed run writes again."""
    if not path.exists():
        return
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= epochs]
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=METRICS)
    writer.writeheader()
    writer.writerows(rows)
    safe_write.write_text(path, out.getvalue(), "writing the metrics")


class NoEvents:
    """Stands in for TensorBoard's SummaryWriter when it is not installed (or not rank 0)."""

    def add_scalar(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


def event_writer(run: Path) -> Any:
    """TensorBoard event files in ``run/tensorboard`` when tensorboard is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return NoEvents()
    return SummaryWriter(str(run / "tensorboard"))


def _column(rows: list[dict[str, str]], key: str) -> np.ndarray:
    """One metrics.csv column as floats; an empty, missing or unreadable cell is NaN."""
    def value(cell: str | None) -> float:
        try:
            return float(cell) if cell not in (None, "") else np.nan
        except ValueError:
            return np.nan
    return np.array([value(r.get(key)) for r in rows], dtype=float)


def write_training_curves(metrics_csv: Path, out_path: Path) -> Path:
    """Plot a run's ``metrics.csv`` (columns of :data:`METRICS`) as
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

    fig, (loss_ax, score_ax) = figure(size=(11.0, 4.5), ncols=2)
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
    save(fig, out_path, "png")
    fig.clear()
    return out_path
