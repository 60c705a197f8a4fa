"""One run of a study: a model trained on one fold of one cell's features and scored on
its test recordings, and ``runs.csv``, where finished runs are kept.

Every model gives a leak probability per segment of the fold's VALIDATION and TESTING
recordings; :func:`~.scoring.recording_metrics` turns them into the per-recording metrics
with the threshold chosen on validation, the same for every model. ``runs.csv`` gets one
row per finished run, appended and flushed to the disk at once, so a study stopped at any
point (Ctrl-C, SIGKILL, a power cut) knows on restart which runs are done: a row is there
whole or not at all (a last line cut off by a crash is dropped on reading).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..dataset.segments import load_split
from ..dataset.store import SPLIT_FILES
from ..model.card import load_model
from ..model.scoring import predict_segments
from ..runtime import devices, safe_write
from ..training.train import train
from .baselines import run_baseline
from .scoring import METRICS, recording_metrics

RUNS_FILE = "runs.csv"
RUNS_COLUMNS = ("cell", "long_s", "short_points", "model", "fold", *METRICS, "threshold",
                "train_recordings", "test_recordings", "seconds", "status", "reason")


def run_key(cell: str, model: str, fold: int) -> tuple[str, str, int]:
    """How a run is known in ``runs.csv``."""
    return cell, model, int(fold)


def finished(path: Path) -> set[tuple[str, str, int]]:
    """The runs ``runs.csv`` holds as finished. A failed run is not among them: it runs
    again when the study does (a full disk, a fault since fixed), and the summary counts
    its last finished row. A last line without its line ending (a kill mid-write, which the
    next :func:`append_run` cuts off) is not a run either."""
    if not path.is_file():
        return set()
    text = path.read_bytes().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1])))
    done = set()
    for row in rows:
        if row.get("status") == "ok" and row.get("fold", "").isdigit():
            done.add(run_key(row["cell"], row["model"], int(row["fold"])))
    return done


def append_run(path: Path, row: dict[str, Any]) -> None:
    """Append one row (writing the header first into a new file), flushed to the disk
    before returning: once this returns, the run counts as done."""
    new = not path.is_file() or path.stat().st_size == 0
    with safe_write.guard(path, f"writing {path.name}"):
        if not new:
            _end_with_newline(path)
        with path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=RUNS_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in RUNS_COLUMNS})
            fh.flush()
            os.fsync(fh.fileno())


def write_runs(path: Path, rows: list[dict[str, Any]]) -> None:
    """``runs.csv`` rewritten whole from ``rows`` (a shared study's, from its database)."""
    with safe_write.writing(path, f"writing {path.name}") as fh:
        writer = csv.DictWriter(fh, fieldnames=RUNS_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in RUNS_COLUMNS})


def _end_with_newline(path: Path) -> None:
    """Cut an unfinished last line (a crash mid-write) so the next row starts cleanly."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(keep)


def run_model(model: str, fold_dir: Path, work: Path, train_cfg: TrainConfig,
              seed: int) -> dict[str, Any]:
    """Train ``model`` on ``fold_dir``'s TRAINING (``work`` holds its run folder, removed
    afterwards) and return the test metrics and the recording counts."""
    train_split = load_split(fold_dir / SPLIT_FILES["TRAINING"], "no")
    val = load_split(fold_dir / SPLIT_FILES["VALIDATION"], "yes")
    test = load_split(fold_dir / SPLIT_FILES["TESTING"], "yes")
    positive = [train_split.labels.index(p) for p in train_cfg.positive
                if p in train_split.labels]
    counts = {"train_recordings": train_split.recordings, "test_recordings": test.recordings}
    if model == "cnn-mel":
        metrics = _cnn(fold_dir, work, train_cfg, val, test, positive)
    elif model == "cnn-raw":
        # the augmentations and the masking are made for log-mel bands in dB
        raw_cfg = replace(train_cfg, augment=(), spec_augment=False)
        metrics = _cnn(fold_dir, work, raw_cfg, val, test, positive)
    else:
        # the baselines read the training features in chunks (split_vectors)
        metrics = run_baseline(model, train_split, val, test, positive, seed)
    return {**metrics, **counts}


def _cnn(fold_dir: Path, work: Path, cfg: TrainConfig, val: Any, test: Any,
         positive: list[int]) -> dict[str, float]:
    """The CNN as ``train`` trains it (early stopping on VALIDATION) on the fold's inputs
    (log-mels, or raw segments: :mod:`.raw`), scored by the study's rule. A run folder
    left by an interrupted run is resumed, not restarted."""
    run_dir = work / "run"
    if (run_dir / "checkpoints" / "last.pt").is_file():
        train(None, run_dir, cfg, resume=True)
    else:
        train(fold_dir, run_dir, cfg, overwrite=True)
    device = devices.resolve(cfg.device, "evaluate").device
    model, _ = load_model(run_dir / "best.pt", device)
    pv, _ = predict_segments(model, val, device)
    pt, _ = predict_segments(model, test, device)
    metrics = recording_metrics(val.file_index, pv, np.isin(val.file_label, positive),
                                test.file_index, pt, np.isin(test.file_label, positive),
                                vote_fraction=cfg.vote_fraction)
    shutil.rmtree(run_dir, ignore_errors=True)
    return metrics
