"""``leakhunter report``: one self-contained HTML file from a predictions file.

The page is ``assets/report.html`` with the stylesheet, the script and the survey's data
(one JSON document) written inline; images and audio are data URIs. Nothing is fetched when
it opens, so it works from a file share or an e-mail attachment, offline.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import AudioConfig, FeatureConfig, ReportConfig
from ..recordings.audio import parse_timestamp
from ..runtime import safe_write
from ..runtime.log import progress_bar
from ..runtime.parallel import Workers, default_workers
from .load import Survey, load_survey
from .locations import locations_html, read_locations
from .media import recording_media
from .sensors import SensorView, sensor_view

log = logging.getLogger(__name__)

COLUMNS = ("path", "sensor_id", "recording_id", "timestamp", "decision", "leak_probability",
           "vote_fraction", "status", "duration_s", "gain_db", "top_class", "familiarity")
"""Columns of the embedded recordings table, in this order (the script reads them by name)."""

SIZE_MARK = "__FILE_SIZE__"  # replaced by the page's own size once it is known


def build_report(predictions: str | Path, out: str | Path, cfg: ReportConfig = ReportConfig(),
                 model: str | Path | None = None,
                 locations: str | Path | None = None) -> dict[str, Any]:
    """Write the survey report of ``predictions`` to ``out`` (through a temporary file).

    ``model``: a ``best.pt`` for the model card when the predictions have no info file.
    ``locations``: the ``locations.csv`` of ``leakhunter locate``, drawn in a "Locations"
    section (default: none, no section).
    Returns a summary: ``out``, ``bytes``, ``recordings``, ``leaks``, ``not_judged``,
    ``audio`` / ``spectrograms`` (how many embedded), ``audio_capped``, ``missing_audio``,
    ``sensor_alerts``, ``sensor_note`` and ``locations`` (``None``, or the section's
    ``pairs``, ``counts``, ``plots``, ``plots_missing``, ``plots_capped``). Raises
    :class:`InputError` for a file that is not a predictions (or locations) file;
    unreadable recordings only lose their media, bad location rows say what is wrong.
    """
    survey = load_survey(predictions, model)
    pairs = read_locations(locations) if locations is not None else None  # before the media
    view = sensor_view(survey.rows, cfg)
    section, located = "", None
    if pairs is not None:
        section, located = locations_html(pairs, {a["sensor_id"]: bool(a["alert"])
                                                  for a in view.alerts})
    media, stats = _gather_media(survey, cfg)
    data = _page_data(survey, view, media, stats, cfg)
    if located is not None:
        data["summary"]["locations"] = {k: located[k] for k in (
            "source", "pairs", "counts", "plots", "plots_missing", "plots_capped")}
    out = Path(out)
    html = _render(data, section)
    safe_write.write_bytes(out, html, "writing the report")
    summary = data["summary"]
    return {"out": str(out), "bytes": len(html), "recordings": summary["recordings"],
            "leaks": summary["leaks"], "not_judged": summary["not_judged"],
            "audio": stats["audio"], "spectrograms": stats["spectrograms"],
            "audio_bytes": stats["audio_bytes"], "audio_capped": stats["audio_capped"],
            "missing_audio": stats["missing"], "sensor_alerts": sum(
                a["alert"] for a in view.alerts), "sensors": len(view.alerts),
            "sensor_note": view.note, "locations": located}


def _wanted(mode: str, row: dict[str, Any]) -> bool:
    return mode == "all" or (mode == "flagged" and row["decision"] == "LEAK")


def _gather_media(survey: Survey, cfg: ReportConfig) -> tuple[dict[int, dict[str, Any]],
                                                              dict[str, Any]]:
    """Encode audio and spectrograms in worker processes. Recordings are taken most
    leak-like first, so when the audio size cap bites it drops the least likely leaks."""
    card = survey.model_card()
    feature = card.feature if card else FeatureConfig()
    audio_cfg = card.audio if card else AudioConfig()
    order = sorted((i for i, r in enumerate(survey.rows)
                    if _wanted(cfg.audio, r) or _wanted(cfg.spectrograms, r)),
                   key=lambda i: (survey.rows[i]["decision"] != "LEAK",
                                  -(survey.rows[i]["leak_probability"] or 0.0)))
    cap = cfg.audio_cap_mb * 1e6
    stats = {"audio": 0, "spectrograms": 0, "audio_bytes": 0, "audio_capped": 0,
             "missing": 0, "cap_mb": cfg.audio_cap_mb}
    full = [False]  # set once the cap is reached: later tasks skip encoding audio

    def tasks() -> Any:
        for i in order:
            row = survey.rows[i]
            yield (str(row["audio_path"]) if row["audio_path"] else None,
                   _wanted(cfg.audio, row) and not full[0], _wanted(cfg.spectrograms, row),
                   feature, audio_cfg, cfg.clip_s, _peak_s(survey, i))

    media: dict[int, dict[str, Any]] = {}
    workers = min(cfg.workers or default_workers(), max(1, len(order) // 4))
    with Workers(workers) as pool, progress_bar(total=len(order), desc="report media",
                                                unit="rec") as bar:
        for i, item in zip(order, pool.map(recording_media, tasks())):
            row = survey.rows[i]
            if "missing" in item:
                stats["missing"] += 1
            if "audio" in item:
                if stats["audio_bytes"] + item["bytes"] > cap:
                    full[0] = True
                    for key in ("audio", "mime", "rate", "bytes"):
                        item.pop(key)
                else:
                    stats["audio"] += 1
                    stats["audio_bytes"] += item["bytes"]
            if _wanted(cfg.audio, row) and "audio" not in item and "missing" not in item:
                stats["audio_capped"] += 1
                item["capped"] = True
            stats["spectrograms"] += "spectrogram" in item
            media[i] = item
            bar.update(1)
    return media, stats


def _peak_s(survey: Survey, i: int) -> float | None:
    probs = survey.timelines.get(i)
    if not probs or survey.segment_hop_s is None:
        return None
    return max(range(len(probs)), key=probs.__getitem__) * survey.segment_hop_s


def _page_data(survey: Survey, view: SensorView, media: dict[int, dict[str, Any]],
               stats: dict[str, Any], cfg: ReportConfig) -> dict[str, Any]:
    rows = survey.rows
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"] or "(none)"] = statuses.get(r["status"] or "(none)", 0) + 1
    dates = sorted(t for t in (parse_timestamp(r["timestamp"]) for r in rows) if t)
    card = survey.model_card()
    classes = list(card.classes) if card else ["LEAK", "NOLEAK"]
    positive = list(card.positive) if card else ["LEAK"]
    # "not a leak" in a multi-class task: the class that means a sound pipe, if there is one
    negative = sorted((c for c in classes if c not in positive),
                      key=lambda c: c not in ("NOLEAK", "NORMAL"))
    feature = card.feature if card else FeatureConfig()
    return {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "version": __version__,
        "source": str(survey.source), "digest": survey.digest,
        "summary": {"recordings": len(rows), "leaks": sum(r["decision"] == "LEAK" for r in rows),
                    "no_leaks": sum(r["decision"] == "NO LEAK" for r in rows),
                    "not_judged": sum(not r["decision"] for r in rows), "statuses": statuses,
                    "first": f"{dates[0]:%Y-%m-%d %H:%M}" if dates else "",
                    "last": f"{dates[-1]:%Y-%m-%d %H:%M}" if dates else "",
                    "media": stats, "audio_mode": cfg.audio,
                    "spectrogram_mode": cfg.spectrograms, "file_size": SIZE_MARK},
        "model": survey.model, "model_note": survey.model_note,
        "decision": (survey.info or {}).get("decision"),
        "labels": {"leak": "LEAK" if "LEAK" in positive else positive[0],
                   "noleak": negative[0] if negative else "NOLEAK"},
        "columns": list(COLUMNS), "extra": survey.extra_columns,
        "rows": [[_row_value(r, c) for c in COLUMNS] for r in rows],
        "files": [str(r["audio_path"]) if r["audio_path"] else r["path"] for r in rows],
        "found": [r["audio_path"] is not None for r in rows],
        "timelines": {str(i): t for i, t in survey.timelines.items()},
        "segment_hop_s": survey.segment_hop_s, "segment_s": feature.segment_s,
        "mel": {"fmin": feature.fmin, "fmax": feature.max_frequency,
                "n_mels": feature.n_mels, "frame_hop_s": feature.frame_hop / feature.sample_rate},
        "media": {str(i): m for i, m in media.items()},
        "sensors": {"alerts": view.alerts, "nights": view.nights, "grid": view.grid,
                    "note": view.note, "window": cfg.nights,
                    "min_leak_nights": cfg.min_leak_nights},
    }


def _row_value(row: dict[str, Any], column: str) -> Any:
    value = row.get(column)
    return round(value, 4) if isinstance(value, float) else value


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (JSON has none; a model card may hold them, e.g.
    an undefined metric) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _render(data: dict[str, Any], locations: str = "") -> bytes:
    """The page: the template with its marks replaced in one pass, so that no inserted text
    (a file name, say) is ever taken for a mark. ``locations``: the section's HTML, or ""."""
    assets = resources.files("leakhunter.report") / "assets"
    template = (assets / "report.html").read_text(encoding="utf-8")
    # "</" inside a script element would end it early; "<\/" is the same string in JSON
    blob = json.dumps(_finite(data), separators=(",", ":"), allow_nan=False
                      ).replace("</", "<\\/")
    parts = {"/*STYLE*/": (assets / "report.css").read_text(encoding="utf-8"),
             "/*SCRIPT*/": (assets / "report.js").read_text(encoding="utf-8"),
             "__DATA__": blob, "<!--LOCATIONS-->": locations,
             "<!--LOCATIONS-NAV-->": ' <a href="#locations">Locations</a>' if locations else ""}
    html = re.sub("|".join(map(re.escape, parts)), lambda m: parts[m.group()], template)
    size = len(html.encode("utf-8"))
    for _ in range(3):  # the size's own digits change the size; settles in two passes
        text = _human(size)
        final = html.replace(SIZE_MARK, text).encode("utf-8")
        if len(final) == size:
            break
        size = len(final)
    return final


def _human(size: int) -> str:
    return f"{size / 1e6:.2f} MB ({size:,} bytes)"
