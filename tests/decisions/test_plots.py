"""Evaluation plots (leakhunter.decisions.plots): files written whole, valid, and no crash on
odd input. (The training curves: tests/training/test_run_folder.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leakhunter.decisions.plots import write_evaluation_plots

from ..helpers.png import assert_png

NAMES = ("roc", "pr", "confusion", "threshold_sweep", "vote_fractions")


def _inputs(seed: int = 0, single_class: bool = False) -> dict:
    """Recordings of 20 segments each; leaks score higher than non-leaks (known
    separation), or all recordings are leaks when ``single_class``."""
    rng = np.random.default_rng(seed)
    rec_truth = np.ones(30, bool) if single_class else np.arange(30) % 2 == 0
    seg_truth = np.repeat(rec_truth, 20)
    seg_score = np.clip(rng.normal(np.where(seg_truth, 0.7, 0.3), 0.15), 0, 1)
    threshold = 0.5
    votes = (seg_score >= threshold).reshape(30, 20).mean(axis=1)
    thresholds = np.linspace(0, 1, 21)
    decided = votes[None, :] >= thresholds[:, None]
    tp = (decided & rec_truth).sum(1)
    fp = (decided & ~rec_truth).sum(1)
    fn = (~decided & rec_truth).sum(1)
    tn = (~decided & ~rec_truth).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sweep = {"threshold": thresholds, "f1": 2 * tp / (2 * tp + fp + fn),
                 "sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp)}
    pred = votes >= 0.5
    confusion = np.array([[np.sum(rec_truth & pred), np.sum(rec_truth & ~pred)],
                          [np.sum(~rec_truth & pred), np.sum(~rec_truth & ~pred)]])
    return {"segment_truth": seg_truth, "segment_score": seg_score,
            "recording_truth": rec_truth, "recording_score": votes,
            "recording_vote_fraction": votes, "threshold": threshold, "sweep": sweep,
            "confusion": confusion, "confusion_labels": ["LEAK", "NO LEAK"]}


def test_evaluation_plots_png(tmp_path: Path) -> None:
    out = tmp_path / "plots"  # not created yet: the function creates it
    written = write_evaluation_plots(out, split="testing", **_inputs())
    assert written == [out / f"{name}.png" for name in NAMES]
    for path in written:
        assert_png(path)
    # nothing temporary left behind
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in NAMES)


def test_evaluation_plots_svg_when_asked(tmp_path: Path) -> None:
    written = write_evaluation_plots(tmp_path, split="validation", formats=("png", "svg"),
                                     **_inputs(seed=1))
    assert len(written) == 2 * len(NAMES)
    for name in NAMES:
        assert_png(tmp_path / f"{name}.png")
        svg = (tmp_path / f"{name}.svg").read_text()
        assert "<svg" in svg and svg.rstrip().endswith("</svg>")


def test_auc_in_legend_and_na_for_single_class(tmp_path: Path) -> None:
    """The legend says the AUC when both classes are present, "n/a" when one is."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):  # keep text as text to read it
        write_evaluation_plots(tmp_path / "ok", split="testing", formats=("svg",), **_inputs())
        write_evaluation_plots(tmp_path / "one", split="testing", formats=("svg",),
                               **_inputs(single_class=True))
    ok = (tmp_path / "ok" / "roc.svg").read_text()
    one = (tmp_path / "one" / "roc.svg").read_text()
    assert "ROC — TESTING" in ok
    assert "AUC 0.9" in ok or "AUC 1.000" in ok  # well separated scores
    assert "AUC n/a" in one and "AUC 0." not in one
    assert "AP n/a" not in (tmp_path / "ok" / "pr.svg").read_text()


def test_degenerate_inputs_do_not_raise(tmp_path: Path) -> None:
    # no leak at all, a NaN score, a five-class matrix with an empty row
    args = _inputs(single_class=True)
    args["segment_truth"] = ~args["segment_truth"]
    args["recording_truth"] = ~args["recording_truth"]
    args["segment_score"] = args["segment_score"].copy()
    args["segment_score"][0] = np.nan
    args["confusion"] = np.array([[3, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 5, 0, 0],
                                  [0, 0, 0, 2, 1], [0, 1, 0, 0, 4]])
    args["confusion_labels"] = ["LEAK", "NOLEAK", "NOISE", "TRAFFIC", "OUT OF WATER"]
    written = write_evaluation_plots(tmp_path, split="testing", **args)
    assert sorted(p.name for p in written) == sorted(f"{name}.png" for name in (
        "roc", "pr", "confusion", "threshold_sweep", "vote_fractions"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    for path in written:
        assert_png(path)


def test_bad_format_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        write_evaluation_plots(tmp_path / "x", split="testing", formats=("png", "bogus"),
                               **_inputs())
    assert not (tmp_path / "x").exists()
