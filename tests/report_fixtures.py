"""A predicted survey for the report tests: the session's tiny model on the session's
recordings, with a threshold that calls about half of them leaks (a two-epoch model's own
threshold might call none), a segment timeline, and the info file."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from leakhunter.cli import main
from leakhunter.predict import predict


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
    """``predict --segments`` of the session recordings into a folder of its own.
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
