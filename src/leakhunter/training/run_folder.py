"""The files of a training run directory, other than checkpoints.

``config.json``, ``metrics.csv`` (a row per epoch), ``model_meta.json``, TensorBoard events
when tensorboard is installed; and the rule that a run directory is never silently reused.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runtime import safe_write

RUN_FILES = ("config.json", "train.log", "metrics.csv", "best.pt", "model_meta.json",
             "curves.png", "checkpoints/last.pt")
METRICS = ("epoch", "step", "train_loss", "val_loss", "val_segment_accuracy",
           "val_segment_f1", "val_file_accuracy", "val_file_f1", "lr", "epoch_s",
           "segments_per_s", "gpu_memory_peak_gib")


def prepare(run: Path, overwrite: bool, main: bool) -> None:
    """Refuse a folder that holds a run unless ``overwrite``; then (on rank 0, ``main``)
    remove that run's files and create ``checkpoints/``."""
    existing = [name for name in RUN_FILES if (run / name).exists()]
    if existing and not overwrite:
        raise InputError(f"{run}: already holds a run ({existing[0]}); use --resume {run} to "
                         f"continue it, --overwrite to replace it, or another --out")
    if main:
        for name in existing:
            (run / name).unlink()
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)


def folder_to_lock(args: dict[str, Any]) -> Path | None:
    """The folder :func:`leakhunter.train.train` locks, from its bound arguments: the run
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
