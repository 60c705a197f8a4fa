"""`leakhunter info`: summary and integrity check, each way a dataset can be damaged, and
sensors shared between splits that the input itself fixed (a note, not a problem)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from leakhunter.cli import main
from leakhunter.dataset.info import inspect_dataset


@pytest.fixture
def damaged(dataset: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(dataset, out)
    return out


def test_info_reports_a_healthy_dataset(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "integrity: OK" in out and "32 x 7" in out
    for split in ("TRAINING", "VALIDATION", "TESTING"):
        assert split in out
    assert main(["info", str(dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["problems"] == [] and info["labels"] == ["LEAK", "NOLEAK"]
    report = json.loads((dataset / "build_report.json").read_text())
    for split, sp in info["splits"].items():
        assert sp["segments"] == report["splits"][split]["segments"]
        assert sp["recordings_per_class"] == report["splits"][split]["recordings_per_class"]


def _mel_offset(path: Path) -> tuple[int, int]:
    with h5py.File(path, "r") as h5:
        ds = h5["mel"]
        info = ds.id.get_chunk_info(0)
        return info.byte_offset, info.size


def test_flipped_feature_bytes_are_caught(damaged: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = damaged / "TRAINING_DATASET.H5"
    offset, size = _mel_offset(path)
    with path.open("r+b") as fh:
        fh.seek(offset + size // 2)
        fh.write(b"\x12" * 64)  # not 0xff: Fletcher-32 cannot tell 0xffff from 0x0000
    assert main(["info", str(damaged)]) == 1
    out = capsys.readouterr().out
    assert "TRAINING_DATASET.H5" in out and "corrupted feature data" in out


def test_truncated_file_is_named(damaged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = damaged / "VALIDATION_DATASET.H5"
    path.write_bytes(path.read_bytes()[:4000])
    assert main(["info", str(damaged)]) == 1
    out = capsys.readouterr().out
    assert "VALIDATION_DATASET.H5" in out and ("corrupted" in out or "not a readable" in out)


def test_missing_split_file_is_named(damaged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (damaged / "TESTING_DATASET.H5").unlink()
    assert main(["info", str(damaged)]) == 1
    assert "TESTING_DATASET.H5: dataset file missing" in capsys.readouterr().out


def test_nan_features_and_bad_cross_references(damaged: Path) -> None:
    path = damaged / "TRAINING_DATASET.H5"
    with h5py.File(path, "r+") as h5:
        h5["mel"][3, 0, 0] = np.nan
        h5["file_index"][0] = 5
    problems = inspect_dataset(damaged)["problems"]
    assert any("segment ranges do not match" in p for p in problems)
    assert any("NaN or infinite" in p for p in problems)


def test_unfinished_file_and_missing_report(damaged: Path) -> None:
    with h5py.File(damaged / "TRAINING_DATASET.H5", "r+") as h5:
        h5.attrs["complete"] = False
    (damaged / "build_report.json").unlink()
    problems = inspect_dataset(damaged)["problems"]
    assert any("unfinished dataset file" in p for p in problems)
    assert any("build_report.json: missing" in p for p in problems)


def test_sensor_in_two_splits_is_a_problem(damaged: Path) -> None:
    with h5py.File(damaged / "TESTING_DATASET.H5", "r") as h5:
        sensor = h5["files/sensor_id"].asstr()[0]
    with h5py.File(damaged / "TRAINING_DATASET.H5", "r+") as h5:
        h5["files/sensor_id"][0] = sensor
    problems = inspect_dataset(damaged)["problems"]
    assert any("sensor(s) appear in more than one split" in p for p in problems)


def test_missing_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "nope")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err


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
