"""Reading what ``predict`` wrote: the decisions, their segment timeline, and the model.

A predictions file is the CSV or JSON that
:func:`leakhunter.decisions.predictions_file.write_predictions` writes; beside it,
``<stem>.info.json`` (:func:`~leakhunter.decisions.predictions_file.write_predictions_info`)
names the model and the decision rule, and ``<stem>_segments.csv`` holds the per-segment
timeline when ``predict --segments`` wrote one. Files from before the info file existed
still load: the model card is then read from ``--model`` or reported as unknown.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..decisions.predictions_file import (
    CARD_KEYS,
    PREDICTIONS_FORMAT,
    PREDICTIONS_VERSION,
    info_path,
)
from ..errors import InputError
from ..model.card import ModelCard, read_card
from ..model.checkpoint import CheckpointError

REQUIRED = ("path", "decision", "status", "leak_probability")
"""Columns without which a file is not a predictions file."""

NUMBERS = ("gain_db", "duration_s", "segments", "leak_probability", "vote_fraction",
           "threshold", "familiarity")
TEXTS = ("path", "sensor_id", "recording_id", "timestamp", "decision", "status", "top_class")


@dataclass
class Survey:
    """Everything the report shows, as read from disk.

    ``rows``: one dict per recording with the keys of :data:`TEXTS` (``str``, "" when
    absent) and :data:`NUMBERS` (``float`` or ``None``), plus ``audio_path`` (the file the
    path points to, resolved, or ``None`` when it is not there). ``timelines``: leak
    probability per segment, by row index. ``model``: the model card, or ``None`` with the
    reason in ``model_note``.
    """

    source: Path
    rows: list[dict[str, Any]]
    digest: str  # SHA-256 of the predictions file: keys the browser's saved review marks
    info: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    model_note: str = ""
    timelines: dict[int, list[float]] = field(default_factory=dict)
    segment_hop_s: float | None = None
    extra_columns: list[str] = field(default_factory=list)

    def model_card(self) -> ModelCard | None:
        """The model's card, or ``None`` when the file names no model or too little of it
        (an info file written by an earlier leakhunter)."""
        if not self.model:
            return None
        try:
            return ModelCard.from_meta(self.model, self.model.get("path", ""))
        except CheckpointError:
            return None


def load_survey(predictions: str | Path, model: str | Path | None = None) -> Survey:
    """Read ``predictions`` (CSV or JSON), its info file and its segment timeline.

    ``model``: a ``best.pt`` whose card to show when the predictions have no info file (or
    to override it). Raises :class:`InputError` when the file is missing, is not a
    predictions file (another format, missing columns), or was written by a newer version.
    """
    path = Path(predictions)
    if not path.is_file():
        raise InputError(f"{path}: no such predictions file")
    raw = path.read_bytes()
    rows, extra = _read_rows(path, raw)
    info = _read_info(path)
    survey = Survey(path, rows, hashlib.sha256(raw).hexdigest(), info, extra_columns=extra)
    base = Path(info["base_dir"]) if info and info.get("base_dir") else None
    for row in rows:
        row["audio_path"] = _resolve(row["path"], base, path.parent)
    if model is not None:
        survey.model = _card_from_model(Path(model))
    elif info is not None:
        survey.model = info.get("model")
    else:
        survey.model_note = (f"{info_path(path).name} is missing (predictions written by an "
                             f"earlier leakhunter?); pass --model MODEL to show the card")
    segments = _segments_file(path, info)
    if segments is not None:
        survey.timelines, survey.segment_hop_s = _read_timeline(segments, rows)
    return survey


def _read_rows(path: Path, raw: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(f"{path}: not a leakhunter predictions file (expected a JSON "
                             f"list of records, one per recording)")
        columns = list(dict.fromkeys(k for r in data for k in r))
        records = data
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not a leakhunter predictions file (not UTF-8 "
                             f"text)") from None
        reader = csv.DictReader(text.splitlines())
        columns = list(reader.fieldnames or [])
        records = list(reader)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InputError(f"{path}: not a leakhunter predictions file (no column "
                         f"{', '.join(missing)}; write one with `leakhunter predict`)")
    rows = []
    for n, record in enumerate(records, start=2 if path.suffix.lower() != ".json" else 1):
        row: dict[str, Any] = {k: _text(record.get(k)) for k in TEXTS}
        row["top_class"] = row["top_class"] or _text(record.get("predicted_class"))
        for key in NUMBERS:
            row[key] = _number(record.get(key), path, n, key)
        row.update({k: record[k] for k in record if k.startswith("p_")})
        if row["decision"] not in ("LEAK", "NO LEAK", ""):
            raise InputError(f"{path}: row {n}: decision {row['decision']!r} is neither "
                             f"LEAK, NO LEAK nor empty")
        rows.append(row)
    # a multi-class model's class per recording: top_class, or predicted_class (newer)
    extra = ["top_class"] if {"top_class", "predicted_class"} & set(columns) else []
    extra += ["familiarity"] if "familiarity" in columns else []
    return rows, extra


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any, path: Path, row: int, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}: row {row}: {key} {value!r} is not a number") from None
    return number if math.isfinite(number) else None


def _read_info(path: Path) -> dict[str, Any] | None:
    ipath = info_path(path)
    if not ipath.is_file():
        return None
    try:
        info = json.loads(ipath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{ipath}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != PREDICTIONS_FORMAT:
        raise InputError(f"{ipath}: not a leakhunter predictions info file")
    version = info.get("version")
    if not isinstance(version, int) or version > PREDICTIONS_VERSION:
        raise InputError(f"{ipath}: format version {version!r}; this leakhunter reads "
                         f"version {PREDICTIONS_VERSION} or earlier (upgrade leakhunter)")
    return info


def _resolve(text: str, base: Path | None, folder: Path) -> Path | None:
    """The recording a predictions path names: as written (absolute, or relative to the
    folder ``predict`` ran in), else relative to the predictions file's folder."""
    if not text:
        return None
    path = Path(text)
    candidates = [path] if path.is_absolute() else \
        [*([base / path] if base else []), folder / path, path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return None


def _card_from_model(model: Path) -> dict[str, Any]:
    try:
        card = read_card(model)
    except (CheckpointError, OSError) as exc:
        raise InputError(f"{model}: cannot read the model ({exc})") from None
    return {"path": str(model.resolve()), "onnx": None,
            **{k: card.meta.get(k) for k in CARD_KEYS}}


def _segments_file(path: Path, info: dict[str, Any] | None) -> Path | None:
    name = (info or {}).get("segments") or f"{path.stem}_segments.csv"
    candidate = path.with_name(name)
    return candidate if candidate.is_file() else None


def _read_timeline(path: Path, rows: list[dict[str, Any]]
                   ) -> tuple[dict[int, list[float]], float | None]:
    """Leak probability per segment by row index, and the segment hop (s)."""
    index = {row["path"]: i for i, row in enumerate(rows)}
    timelines: dict[int, list[float]] = {}
    hop = None
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"path", "start_s", "leak_probability"} <= set(reader.fieldnames or []):
            raise InputError(f"{path}: not a segment timeline (expected path, start_s, "
                             f"leak_probability columns)")
        last: dict[int, float] = {}
        for n, rec in enumerate(reader, start=2):
            i = index.get(rec["path"])
            if i is None:
                continue
            start = _number(rec["start_s"], path, n, "start_s")
            prob = _number(rec["leak_probability"], path, n, "leak_probability")
            if hop is None and i in last and start is not None:
                hop = start - last[i]
            if start is not None:
                last[i] = start
            timelines.setdefault(i, []).append(round(prob, 3) if prob is not None else 0.0)
    return timelines, hop
