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


def _stats(reference: np.ndarray) -> dict:
    part = {"reference": torch.from_numpy(np.sort(reference))}
    return {"quantile": 0.01, "parts": {"embedding": part, "input": part}}


def test_site_shift_is_a_rank_test_against_the_validation_recordings() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    ref = rng.lognormal(3.0, 0.5, 38)  # 38 validation recordings, as in the README's site A
    stats = _stats(ref)
    same = rng.lognormal(3.0, 0.5, (40, 2))
    far = rng.lognormal(3.45, 0.5, (60, 2))  # a night of a site farther as a whole
    far[:, 1] = rng.lognormal(3.0, 0.5, 60)  # ... by one distance only
    assert not familiarity.site_shift(stats, same)["shifted"]
    test = familiarity.site_shift(stats, far)
    assert test["shifted"] and test["recordings"] == 60
    # the p-value is the asymptotic Mann-Whitney one of the farther part
    expected = mannwhitneyu(far[:, 0], ref, alternative="greater", method="asymptotic",
                            use_continuity=False).pvalue
    assert math.isclose(test["p"], expected, rel_tol=1e-9)
    # one by one, most of that site looks familiar: the run is what tells
    assert familiarity.unfamiliar(stats, far).mean() < 0.5
    # fewer recordings than MIN_RUN never make a site, however far
    few = far[: familiarity.MIN_RUN - 1] * 100
    assert not familiarity.site_shift(stats, few)["shifted"]
    assert not familiarity.site_shift(stats, np.empty((0, 2)))["shifted"]


def _with_reference(src: Path, dst: Path, scale: float) -> Path:
    """A copy of a model whose validation reference distances are scaled by ``scale``."""
    state = checkpoint.load(src, "model")
    for part in state["familiarity"]["parts"].values():
        part["reference"] = part["reference"] * scale
        part["threshold"] = part["threshold"] * scale
    state.pop("format_version")
    checkpoint.save(dst, state)
    return dst


def test_predict_flags_a_shifted_run_and_names_learn(run: Path, recordings: Path,
                                                     tmp_path: Path, capsys) -> None:
    # validation recordings ten times closer than any recording can be: every run of at
    # least MIN_RUN recordings is another site's
    model = _with_reference(run / "best.pt", tmp_path / "near.pt", 0.1)
    out = tmp_path / "p.csv"
    assert main(["predict", str(model), str(recordings), "--out", str(out),
                 "--workers", "1"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(out.open()))
    judged = [r for r in rows if r["decision"]]
    assert len(judged) >= familiarity.MIN_RUN
    assert {r["status"] for r in judged} == {"unfamiliar"}
    assert "together lie farther from the training data" in captured.out
    assert captured.err.count("are unfamiliar") == 1 and "leakhunter learn" in captured.err
    # three recordings are too few to make a site: judged one by one, then
    few = sorted((recordings / "LEAK").glob("*.wav"))[:3]
    assert main(["predict", str(model), *map(str, few), "--out", str(out),
                 "--workers", "1"]) == 0
    assert "together lie farther" not in capsys.readouterr().out
    # the model as trained: its own site's recordings raise no warning
    assert main(["predict", str(run / "best.pt"), str(recordings), "--out", str(out),
                 "--workers", "1"]) == 0
    assert "are unfamiliar" not in capsys.readouterr().err
