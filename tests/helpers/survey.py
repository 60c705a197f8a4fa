"""A predicted survey for the report tests: the test run's tiny model on its shared
recordings, with a threshold that calls about half of them leaks (a two-epoch model's own
threshold might call none), a segment timeline, and the info file."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leakhunter.cli import main
from leakhunter.decisions.predict import predict


@dataclass(frozen=True)
class Survey:
    dir: Path
    model: Path
    recordings: Path
    predictions: Path
    threshold: float
    rows: list[dict[str, str]]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def page_data(html: Path) -> dict[str, Any]:
    """The survey data embedded in a report."""
    text = html.read_text(encoding="utf-8")
    blob = re.search(r'<script type="application/json" id="survey-data">(.*?)</script>',
                     text, re.S)
    assert blob, "no embedded survey data"
    return json.loads(blob.group(1))


def _splitting_threshold(model: Path, recordings: Path) -> float:
    """A segment threshold under which about half the judged recordings are leaks: a
    recording is a leak (vote 0.5) when its ceil(n/2)-th highest segment reaches it."""
    keys = []
    for record in predict(model, [recordings], workers=1, segments=True):
        if record.get("timeline"):  # not judged recordings have none
            probs = sorted((p for _, p, _ in record["timeline"]), reverse=True)
            keys.append(probs[math.ceil(len(probs) / 2) - 1])
    keys.sort()
    mid = len(keys) // 2
    return (keys[mid - 1] + keys[mid]) / 2


@pytest.fixture(scope="session")
def survey(trained_run: Path, recordings: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Survey:
    """``predict --segments`` of the shared test recordings into a folder of its own.
    Read-only."""
    out = tmp_path_factory.mktemp("survey")
    model = trained_run / "best.pt"
    threshold = _splitting_threshold(model, recordings)
    predictions = out / "predictions.csv"
    assert main(["-q", "predict", str(model), str(recordings), "--out", str(predictions),
                 "--segments", "--threshold", repr(threshold), "--workers", "1"]) == 0
    rows = read_csv(predictions)
    decisions = [r["decision"] for r in rows]
    assert decisions.count("LEAK") >= 3 and decisions.count("NO LEAK") >= 3, decisions
    return Survey(out, model, recordings, predictions, threshold, rows)


def ten_thousand(folder: Path, n: int = 10_000) -> Path:
    """A predictions CSV of ``n`` recordings: 200 sensors over 50 nights, every fifth
    sensor leaking from its 20th night on, others with an occasional loud night."""
    path = folder / "big.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "sensor_id", "recording_id", "timestamp", "gain_db",
                    "duration_s", "segments", "leak_probability", "vote_fraction",
                    "decision", "threshold", "status"])
        for i in range(n):
            sensor, night = i % 200, i // 200
            leak = (sensor % 5 == 0 and night >= 20) or (i % 97 == 0)
            prob = 0.8 if leak else 0.1 + (i % 7) / 100
            status = "silence" if i % 250 == 3 else "ok"
            when = f"{datetime(2024, 3, 1, 23, 15) + timedelta(days=night):%Y%m%dT%H%M%S}"
            name = f"S{sensor:04d}~R{i:06d}~{when}~20.wav"
            w.writerow([f"/survey/{name}", f"S{sensor:04d}", f"R{i:06d}", when,
                        20, 10, 79, prob if status == "ok" else "",
                        (0.9 if leak else 0.05) if status == "ok" else "",
                        ("LEAK" if leak else "NO LEAK") if status == "ok" else "", 0.5,
                        status])
    return path
