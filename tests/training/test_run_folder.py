"""A run folder's files (leakhunter.training.run_folder): the training curves drawn from
metrics.csv, whole and valid, from a header alone too."""

from __future__ import annotations

import csv
from pathlib import Path

from leakhunter.training.run_folder import METRICS, write_training_curves

from ..helpers.png import PNG_SIGNATURE, assert_png


def test_training_curves(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRICS)
        writer.writeheader()
        for epoch in range(1, 6):
            writer.writerow({
                "epoch": epoch, "step": 10 * epoch, "train_loss": 1.0 / epoch,
                "val_loss": "" if epoch == 3 else 1.2 / epoch,  # an empty cell
                "val_segment_accuracy": 0.5 + 0.08 * epoch,
                "val_segment_f1": 0.5 + 0.07 * epoch,
                "val_file_accuracy": 0.5 + 0.09 * epoch,
                "val_file_f1": [0.5, 0.7, 0.9, 0.8, 0.85][epoch - 1],
                "lr": 1e-3, "epoch_s": 2.5, "segments_per_s": 400.0})
    out = tmp_path / "sub" / "training_curves.png"
    assert write_training_curves(csv_path, out) == out
    assert_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["training_curves.png"]


def test_training_curves_header_only(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(",".join(METRICS) + "\n")
    out = write_training_curves(csv_path, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
