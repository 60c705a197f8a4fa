"""The predictions file: the CSV or JSON `predict` writes, its per-segment timeline, and the
info file beside it (``<stem>.info.json``) that says which model and rule made the rows.

``report`` reads these files, and ``predict --resume`` appends rows that share the info
file's identity (:mod:`leakhunter.decisions.results_log`).
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..runtime import safe_write

if TYPE_CHECKING:
    from .predict import Predictor


COLUMNS = ("path", "sensor_id", "recording_id", "timestamp", "gain_db", "duration_s",
           "segments", "leak_probability", "vote_fraction", "decision", "threshold", "status",
           "familiarity")


def write_predictions(records: list[dict[str, Any]], out: Path, fmt: str,
                      classes: list[str]) -> Path:
    """Write the records as CSV (one row per recording; multi-class adds ``predicted_class``
    and ``p_<CLASS>`` columns) or JSON, through a temporary file. Timelines go to
    :func:`write_timeline`, not here."""
    out = Path(out)
    rows = [{k: v for k, v in r.items() if k != "timeline"} for r in records]
    if fmt == "json":
        return safe_write.write_json(out, rows, "writing decisions")
    columns = csv_columns(classes)
    with safe_write.writing(out, "writing decisions") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(csv_row(row, columns))
    return out


def csv_columns(classes: list[str]) -> list[str]:
    """The CSV columns for a model with ``classes``: :data:`COLUMNS`, and for multi-class
    models ``predicted_class`` and ``p_<CLASS>``."""
    extra = ["predicted_class", *[f"p_{c}" for c in classes]] if len(classes) > 2 else []
    return [*COLUMNS, *extra]


def csv_row(record: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """A record's CSV cells (floats to 6 significant digits, None empty)."""
    return {k: _cell(record.get(k)) for k in columns}


def write_timeline(records: list[dict[str, Any]], out: Path) -> Path:
    """Per-segment CSV: path, start_s, leak_probability, top_class."""
    with safe_write.writing(out, "writing the segment timeline") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "start_s", "leak_probability", "top_class"])
        for r in records:
            for start, prob, top in r.get("timeline", []):
                writer.writerow([r["path"], f"{start:.3f}", f"{prob:.6f}", top])
    return Path(out)


PREDICTIONS_FORMAT = "leakhunter-predictions"
PREDICTIONS_VERSION = 1  # of the sidecar below; readers refuse a newer one
CARD_KEYS = ("class_names", "positive", "task", "threshold", "threshold_method", "aggregate",
             "vote_fraction", "class_aggregate", "parent", "epoch", "metrics", "parameters",
             "dataset_dir", "feature_config", "audio_config", "leakhunter_version")
"""What of a model's metadata the info file keeps (absent keys are written as null)."""


def info_path(predictions: Path) -> Path:
    """``predictions.csv`` -> ``predictions.info.json`` (also for ``.json`` predictions)."""
    return Path(predictions).with_suffix(".info.json")


def segments_path(predictions: Path) -> Path:
    """``predictions.csv`` -> ``predictions_segments.csv``: the ``--segments`` timeline."""
    return Path(predictions).with_name(Path(predictions).stem + "_segments.csv")


def predictions_info(out: Path, predictor: Predictor, segments: Path | None = None
                     ) -> dict[str, Any]:
    """What ``info_path(out)`` holds: which model made the predictions in ``out`` (its card:
    classes, threshold and how it was chosen, training metrics, feature config), the
    decision rule applied, the segment timeline file when there is one, the folder relative
    paths are relative to, and the identity that rows appended later must share
    (:meth:`Predictor.identity` and the CSV columns: `predict --resume`)."""
    card = {k: predictor.card.meta.get(k) for k in CARD_KEYS}
    return {"format": PREDICTIONS_FORMAT, "version": PREDICTIONS_VERSION,
            "predictions": Path(out).name, "segments": segments.name if segments else None,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "base_dir": os.getcwd(),
            "leakhunter_version": __version__,
            "model": {"path": str(predictor.model_path.resolve()),
                      "onnx": str(predictor.onnx.resolve()) if predictor.onnx else None,
                      **card},
            "decision": predictor.rule.to_dict(),
            "identity": {**predictor.identity(), "columns": csv_columns(predictor.classes)}}


def write_predictions_info(out: Path, predictor: Predictor, segments: Path | None = None
                           ) -> Path:
    """Write :func:`predictions_info` to ``info_path(out)``, through a temporary file. The
    predictions file itself keeps its columns, so readers of earlier versions are
    unaffected."""
    path = info_path(out)
    safe_write.write_json(path, predictions_info(out, predictor, segments))
    return path


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value

