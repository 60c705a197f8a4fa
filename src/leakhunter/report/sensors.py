"""Sensors over time: nights from file-name timestamps, and sensor-level alerts.

A real leak is persistent: a noise logger hears it night after night, while a passing
truck or a pump is heard once. A sensor's recordings are grouped into nights; a night is a
leak night when any recording judged that night is called a leak. A sensor alerts when at
least ``min_leak_nights`` of its last ``nights`` recorded nights are leak nights.

A night runs from noon to noon, so a survey's 22:00 and 03:00 recordings fall into the
same night, labelled by the evening's date.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import ReportConfig
from ..recordings.audio import parse_timestamp
from ..runtime import safe_write

NIGHT_STARTS = timedelta(hours=12)  # shift so that a night's recordings share a date
SENSOR_COLUMNS = ("rank", "sensor_id", "alert", "leak_nights", "recent_nights",
                  "first_leak_night", "last_night", "mean_probability_recent",
                  "max_probability_recent", "latest_decision", "nights", "recordings",
                  "judged")


def night_of(when: datetime) -> date:
    """The night a recording belongs to, named by the date on which it began (noon)."""
    return (when - NIGHT_STARTS).date()


@dataclass
class SensorView:
    """``alerts``: one dict per sensor (keys :data:`SENSOR_COLUMNS`), ranked: alerting
    sensors first, then by leak nights and recent probability. ``nights``: every survey
    night in order (ISO dates). ``grid``: per sensor (in ``alerts`` order) a dict night ->
    ``[max leak probability, max vote fraction, recordings, called leak]``. ``note``: why
    the view is empty or partial ("" when every recording is placed)."""

    alerts: list[dict[str, Any]]
    nights: list[str]
    grid: list[dict[str, list[Any]]]
    note: str


def sensor_view(rows: list[dict[str, Any]], cfg: ReportConfig = ReportConfig()
                ) -> SensorView:
    """Group ``rows`` (records as :func:`leakhunter.report.load.load_survey` reads them,
    or as ``predict`` makes them) by sensor and night and rank the sensors."""
    placed: dict[str, dict[date, list[dict[str, Any]]]] = {}
    undated, unnamed, example = 0, 0, ""
    for row in rows:
        sensor = row.get("sensor_id") or ""
        when = parse_timestamp(row.get("timestamp") or "")
        if not sensor:
            unnamed += 1
        elif when is None:
            undated += 1
            example = example or row.get("timestamp") or "(empty)"
        else:
            placed.setdefault(sensor, {}).setdefault(night_of(when), []).append(row)
    note = _note(len(rows), unnamed, undated, example)
    all_nights = sorted({n for per in placed.values() for n in per})
    summaries, grids = [], []
    for sensor, per_night in placed.items():
        summary, grid = _sensor(sensor, per_night, cfg)
        summaries.append(summary)
        grids.append(grid)
    order = sorted(range(len(summaries)), key=lambda i: (
        not summaries[i]["alert"], -summaries[i]["leak_nights"],
        -(summaries[i]["mean_probability_recent"] or 0.0), summaries[i]["sensor_id"]))
    alerts = [summaries[i] for i in order]
    for rank, summary in enumerate(alerts, start=1):
        summary["rank"] = rank
    return SensorView(alerts, [n.isoformat() for n in all_nights], [grids[i] for i in order],
                      note)


def _note(total: int, unnamed: int, undated: int, example: str) -> str:
    if total == 0:
        return "no recordings"
    parts = []
    if unnamed:
        parts.append(f"{unnamed} of {total} recording(s) have no sensor id in their file "
                     f"name (expected sensor~recording~timestamp~gain)")
    if undated:
        parts.append(f"{undated} of {total} recording(s) have a timestamp that is not a date "
                     f"(e.g. {example!r})")
    return "; ".join(parts)


def _sensor(sensor: str, per_night: dict[date, list[dict[str, Any]]], cfg: ReportConfig
            ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    grid: dict[str, list[Any]] = {}
    judged_nights: list[tuple[date, bool, float]] = []
    recordings = judged = 0
    latest: tuple[str, str] = ("", "")
    for night in sorted(per_night):
        rows = per_night[night]
        recordings += len(rows)
        called = [r for r in rows if r.get("decision")]
        judged += len(called)
        probs = [r["leak_probability"] for r in called if r.get("leak_probability") is not None]
        votes = [r["vote_fraction"] for r in called if r.get("vote_fraction") is not None]
        leak = any(r["decision"] == "LEAK" for r in called)
        grid[night.isoformat()] = [round(max(probs), 4) if probs else None,
                                   round(max(votes), 4) if votes else None, len(rows),
                                   leak if called else None]
        if called:
            judged_nights.append((night, leak, max(probs) if probs else 0.0))
            last = max(called, key=lambda r: r.get("timestamp") or "")
            latest = max(latest, (last.get("timestamp") or "", last["decision"]))
    recent = judged_nights[-cfg.nights:]
    leak_nights = sum(leak for _, leak, _ in recent)
    first_leak = next((n for n, leak, _ in judged_nights if leak), None)
    summary = {
        "sensor_id": sensor, "alert": leak_nights >= cfg.min_leak_nights,
        "leak_nights": leak_nights, "recent_nights": len(recent),
        "first_leak_night": first_leak.isoformat() if first_leak else "",
        "last_night": max(per_night).isoformat(),
        "mean_probability_recent": round(sum(p for *_, p in recent) / len(recent), 4)
        if recent else None,
        "max_probability_recent": round(max(p for *_, p in recent), 4) if recent else None,
        "latest_decision": latest[1], "nights": len(per_night), "recordings": recordings,
        "judged": judged}
    return summary, grid


def write_sensors_csv(view: SensorView, out: str | Path) -> Path:
    """Write the ranked sensor decisions (:data:`SENSOR_COLUMNS`), through a temporary
    file; a survey without sensor/timestamp metadata gives the header alone."""
    out = Path(out)
    with safe_write.writing(out, "writing the sensor decisions") as fh:
        writer = csv.DictWriter(fh, fieldnames=SENSOR_COLUMNS)
        writer.writeheader()
        for row in view.alerts:
            writer.writerow({k: _cell(row[k]) for k in SENSOR_COLUMNS})
    return out


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value
