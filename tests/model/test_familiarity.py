"""Familiarity: statistics stored by train, the figure and status in evaluate and predict,
and older models without statistics."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from leakhunter.cli import main
from leakhunter.model import checkpoint, familiarity


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def test_train_stores_plain_statistics(trained_run: Path) -> None:
    state = checkpoint.load(trained_run / "best.pt", "model")  # weights_only
    stats = state["familiarity"]
    dense = state["model_config"]["dense"]
    n_mels = state["feature_config"]["n_mels"]
    emb, inp = stats["parts"]["embedding"], stats["parts"]["input"]
    assert emb["class_means"].shape == (2, dense) and emb["precision"].shape == (dense, dense)
    assert inp["class_means"].shape == (2, 2 * n_mels)
    assert stats["reference_split"] == "VALIDATION" and stats["quantile"] == 0.01
    for part in (emb, inp):
        ref = part["reference"].numpy()
        assert np.all(np.diff(ref) >= 0) and len(ref) == 6  # the 6 validation recordings
        assert part["threshold"] == ref[-1]  # fewer than 1 % of 6: beyond the farthest
    meta = json.loads((trained_run / "model_meta.json").read_text())
    assert meta["familiarity"]["method"] == familiarity.METHOD


def test_familiarity_and_status_agree() -> None:
    ref = np.arange(1.0, 201.0)  # 200 validation recordings at distances 1..200
    part = {"reference": torch.from_numpy(ref)}
    stats = {"quantile": 0.01, "parts": {"embedding": part, "input": part}}
    d = np.array([[0.5, 0.5], [150.0, 10.0], [199.0, 3.0], [199.5, 3.0], [5.0, 250.0]])
    fam = familiarity.familiarity(stats, d)
    assert np.allclose(fam, [1.0, 51 / 200, 2 / 200, 1 / 200, 0.0])
    assert familiarity.unfamiliar(stats, d).tolist() == [False, False, False, True, True]


def test_evaluate_adds_a_column_and_counts(run: Path, dataset: Path, tmp_path: Path,
                                          capsys) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", str(run / "best.pt"), str(dataset), "--split", "VALIDATION",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    # the reference recordings themselves: none is farther than all of them
    assert report["familiarity"]["unfamiliar"] == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert {r["status"] for r in rows} == {"ok"}
    assert all(float(r["familiarity"]) >= 1 / 6 - 1e-9 for r in rows)
    assert "familiarity: 0 of 6 recordings unfamiliar" in capsys.readouterr().out


def _without_statistics(src: Path, dst: Path) -> Path:
    state = checkpoint.load(src, "model")
    state.pop("familiarity")
    state.pop("format_version")
    checkpoint.save(dst, state)
    return dst


def test_older_models_load_with_an_empty_figure(run: Path, dataset: Path, recordings: Path,
                                                tmp_path: Path, capsys) -> None:
    old = _without_statistics(run / "best.pt", tmp_path / "old.pt")
    out = tmp_path / "p.csv"
    assert main(["predict", str(old), str(recordings / "LEAK"), "--out", str(out),
                 "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("carries no familiarity statistics") == 1  # one line
    rows = list(csv.DictReader(out.open()))
    assert rows and all(r["familiarity"] == "" for r in rows)
    assert all(r["status"] in ("ok", "out of water") for r in rows)
    assert "unfamiliar" not in captured.out
    ev = tmp_path / "ev"
    assert main(["-q", "evaluate", str(old), str(dataset), "--out", str(ev)]) == 0
    assert json.loads((ev / "report.json").read_text())["familiarity"] is None
    assert all(r["familiarity"] == "" for r in csv.DictReader((ev / "predictions.csv").open()))


def test_predict_matches_evaluate(run: Path, dataset: Path, tmp_path: Path) -> None:
    """The same recordings get the same familiarity through predict (batches of many
    recordings, features from audio) and evaluate (from the dataset)."""
    ev = tmp_path / "ev"
    assert main(["-q", "evaluate", str(run / "best.pt"), str(dataset), "--out", str(ev)]) == 0
    rows = {r["path"]: r for r in csv.DictReader((ev / "predictions.csv").open())}
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", str(run / "best.pt"), *rows, "--out", str(out),
                 "--workers", "1"]) == 0
    for r in csv.DictReader(out.open()):
        expected = float(rows[r["path"]]["familiarity"])
        assert math.isclose(float(r["familiarity"]), expected, abs_tol=1 / 6 + 1e-9)
