"""Recordings shorter than one segment are treated alike everywhere: build pads and marks
them, train and evaluate use them, predict pads them; below --min-duration both skip.
The input here fixes the splits (split folders) and shares sensors between them, which
`info` reports as the input's choice."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from leakhunter.cli import main
from leakhunter.config import SPLITS, SynthConfig
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.recordings.synth.synth import synthesize

SHORT = "S0901~R000001~20240101T000000~20.wav"  # 0.1 s: padded
TINY = "S0902~R000002~20240101T000000~20.wav"  # 0.02 s: under --min-duration (0.05 s)


@pytest.fixture(scope="module")
def presplit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TRAINING/VALIDATION/TESTING folders of LEAK/NOLEAK recordings, with the same sensors
    in every split, plus a 0.1 s and a 0.02 s leak recording in TESTING and a 0.1 s one in
    TRAINING."""
    root = tmp_path_factory.mktemp("presplit") / "in"
    for i, split in enumerate(SPLITS):
        synthesize(root / split, SynthConfig(count=4, duration_s=1.0, sensors_per_label=2,
                                             out_of_water=0, seed=10 + i))
    rng = np.random.default_rng(0)
    for split, name, seconds in (("TESTING", SHORT, 0.1), ("TESTING", TINY, 0.02),
                                 ("TRAINING", "S0903~R000003~20240101T000000~20.wav", 0.1)):
        wave = (0.1 * rng.standard_normal(int(seconds * 4096))).astype(np.float32)
        sf.write(root / split / "LEAK" / name, wave, 4096)
    return root


def test_short_recording_through_build_train_evaluate_predict(presplit: Path, tmp_path: Path,
                                                              capsys) -> None:
    ds, run = tmp_path / "ds", tmp_path / "run"
    assert main(["build", str(presplit), "--out", str(ds), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "2 padded to one segment" in printed and "1 skipped" in printed
    report = json.loads((ds / "build_report.json").read_text())
    assert report["padded"] == 2 and report["splits"]["TESTING"]["padded"] == 1
    assert report["splits"]["TRAINING"]["padded"] == 1 and report["min_duration_s"] == 0.05
    assert [Path(s["path"]).name for s in report["skipped"]] == [TINY]
    assert "too short" in report["skipped"][0]["reason"]
    with h5py.File(ds / SPLIT_FILES["TESTING"], "r") as h5:
        names = [Path(p).name for p in h5["files/path"].asstr()[()]]
        padded = h5["files/padded"][()]
        counts = h5["files/segment_count"][()]
    i = names.index(SHORT)
    assert padded[i] == 1 and counts[i] == 1 and padded.sum() == 1

    assert main(["-q", "train", str(ds), "--out", str(run), "--epochs", "1", "--width", "8",
                 "--dense", "32", "--batch-size", "32"]) == 0
    assert main(["evaluate", str(run / "best.pt"), str(ds), "--out", str(tmp_path / "ev")]) == 0
    assert "1 recording(s) shorter than one segment" in capsys.readouterr().out
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert ev["dataset"]["padded"] == 1
    rows = {Path(r["path"]).name: r for r in
            csv.DictReader((tmp_path / "ev" / "predictions.csv").open())}
    assert SHORT in rows and TINY not in rows

    out = tmp_path / "p.csv"
    leak = presplit / "TESTING" / "LEAK"
    assert main(["-q", "predict", str(run / "best.pt"), str(leak / SHORT), str(leak / TINY),
                 "--out", str(out), "--workers", "1"]) == 0
    predicted = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert predicted[SHORT]["status"] == "padded" and predicted[SHORT]["segments"] == "1"
    assert predicted[SHORT]["decision"] == rows[SHORT]["decision"]
    assert float(predicted[SHORT]["leak_probability"]) == pytest.approx(
        float(rows[SHORT]["leak_probability"]), abs=0.02)
    assert predicted[TINY]["status"] == "too short" and predicted[TINY]["decision"] == ""
    # the floor travels with the model: a lower one given to predict judges the tiny file
    assert main(["-q", "predict", str(run / "best.pt"), str(leak / TINY), "--out", str(out),
                 "--workers", "1", "--min-duration", "0.01"]) == 0
    assert next(csv.DictReader(out.open()))["status"] == "padded"


def test_build_min_duration_floor(presplit: Path, tmp_path: Path) -> None:
    assert main(["-q", "build", str(presplit), "--out", str(tmp_path / "ds"), "--workers",
                 "1", "--min-duration", "0.5"]) == 0
    report = json.loads((tmp_path / "ds" / "build_report.json").read_text())
    assert report["padded"] == 0 and len(report["skipped"]) == 3
    assert all("minimum duration is 0.5 s" in s["reason"] for s in report["skipped"])


def test_info_reports_sensors_shared_by_the_inputs_split_as_a_note(
        presplit: Path, tmp_path: Path, capsys) -> None:
    ds = tmp_path / "ds"
    assert main(["-q", "build", str(presplit), "--out", str(ds), "--workers", "1"]) == 0
    assert json.loads((ds / "build_report.json").read_text())["splits_from"] == "input"
    capsys.readouterr()
    assert main(["info", str(ds)]) == 0
    out = capsys.readouterr().out
    assert "integrity: OK" in out
    assert "note:" in out and "as the input's own split put them" in out
    assert main(["info", str(ds), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["problems"] == [] and len(info["notes"]) == 1
    assert info["splits"]["TESTING"]["padded"] == 1
    # the same overlap in a dataset whose splits build chose is still a problem
    report = json.loads((ds / "build_report.json").read_text())
    report["splits_from"] = "build"
    (ds / "build_report.json").write_text(json.dumps(report))
    assert main(["info", str(ds)]) == 1
    assert "sensor(s) appear in more than one split" in capsys.readouterr().out
