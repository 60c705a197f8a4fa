"""A study's outputs: runs.csv read back, the summary over folds, the paired comparison of
the best configuration with the paper's choice, and the five files of write_outputs."""

from __future__ import annotations

import csv
import dataclasses
import math

import numpy as np
import pytest

from leakhunter.config import (
    BuildConfig,
    FeatureConfig,
    SplitConfig,
    StudyConfig,
    from_dict,
    load_toml,
)
from leakhunter.errors import InputError
from leakhunter.study.outputs import (
    SUMMARY_COLUMNS,
    paired_comparison,
    read_runs,
    summarise,
    write_outputs,
)
from leakhunter.study.scoring import METRICS
from tests.helpers.png import assert_png

RUN_COLUMNS = ("cell", "long_s", "short_points", "model", "fold", *METRICS, "threshold",
               "train_recordings", "test_recordings", "seconds", "status", "reason")


def run(long_s: float, short: int, model: str, fold: int, acc: float | None,
        auc: float = math.nan, status: str = "ok", reason: str = "") -> dict:
    """One run as read_runs returns it; the other metrics follow accuracy."""
    ok = status == "ok"
    value = acc if ok else math.nan
    return {"cell": f"long{long_s:g}-short{short}", "long_s": long_s, "short_points": short,
            "model": model, "fold": fold, "accuracy": value,
            "precision": value - 0.01 if ok else math.nan,
            "sensitivity": value - 0.02 if ok else math.nan,
            "specificity": value + 0.01 if ok else math.nan,
            "f1": value - 0.015 if ok else math.nan, "auc": auc if ok else math.nan,
            "threshold": 0.5 if ok else math.nan, "train_recordings": 80 if ok else None,
            "test_recordings": 20 if ok else None, "seconds": 10.0 + fold if ok else math.nan,
            "status": status, "reason": reason}


def cell_runs(long_s: float, short: int, accs: list[float], aucs: list[float] | None = None,
              model: str = "cnn-mel") -> list[dict]:
    aucs = aucs or [min(a + 0.01, 1.0) for a in accs]
    return [run(long_s, short, model, f, a, u) for f, (a, u) in enumerate(zip(accs, aucs))]


def write_runs_csv(path, runs: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(RUN_COLUMNS)
        for r in runs:
            w.writerow(["" if isinstance(r[c], float) and math.isnan(r[c]) or r[c] is None
                        else r[c] for c in RUN_COLUMNS])


def test_read_runs_parses_numbers_and_tolerates_gaps(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    runs = [run(0.25, 512, "cnn-mel", 0, 0.9, 0.95),
            run(0.25, 512, "cnn-mel", 1, None, status="failed", reason="out of memory")]
    write_runs_csv(path, runs)
    with path.open("a") as fh:
        fh.write("long0.25-short512,0.25,512,cnn-mel,2,0.8,0.8,0.8,0.8,0.8,nan,0.5,80,20,"
                 "9.5,ok,\n")
        fh.write("long0.25-short512,0.25,5")  # cut off: a process killed mid-line
    got = read_runs(path)
    assert len(got) == 3
    assert got[0]["accuracy"] == 0.9 and got[0]["short_points"] == 512
    assert got[0]["train_recordings"] == 80 and got[0]["fold"] == 0
    assert got[1]["status"] == "failed" and math.isnan(got[1]["accuracy"])
    assert got[1]["reason"] == "out of memory" and got[1]["test_recordings"] is None
    assert math.isnan(got[2]["auc"]) and got[2]["accuracy"] == 0.8
    with pytest.raises(InputError, match="no runs file"):
        read_runs(tmp_path / "missing.csv")


def test_summarise_matches_numpy_and_counts_failures() -> None:
    accs = [0.91, 0.87, 0.95, 0.89, 0.93]
    aucs = [0.97, math.nan, 0.99, 0.94, 0.96]  # fold 1 tested one class only
    runs = cell_runs(0.25, 512, accs, aucs)
    runs.append(run(0.25, 512, "cnn-mel", 5, None, status="failed", reason="diverged"))
    runs.insert(0, run(0.25, 512, "cnn-mel", 2, None, status="failed", reason="killed"))
    runs.append(run(0.5, 256, "cnn-mel", 0, 0.8))  # one fold only
    rows = summarise(runs)
    assert [(r["long_s"], r["short_points"]) for r in rows] == [(0.25, 512), (0.5, 256)]
    row = rows[0]
    assert set(SUMMARY_COLUMNS) <= set(row)
    assert row["folds"] == 5 and row["failed"] == 1  # fold 2 failed, then finished
    assert row["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert row["accuracy_sd"] == pytest.approx(np.std(accs, ddof=1))
    f1 = np.asarray(accs) - 0.015
    assert row["f1_sd"] == pytest.approx(np.std(f1, ddof=1))
    finite = [a for a in aucs if not math.isnan(a)]
    assert row["auc_mean"] == pytest.approx(np.mean(finite))
    assert row["auc_sd"] == pytest.approx(np.std(finite, ddof=1))
    assert row["seconds_mean"] == pytest.approx(12.0)
    assert rows[1]["folds"] == 1 and rows[1]["accuracy_mean"] == pytest.approx(0.8)
    assert math.isnan(rows[1]["accuracy_sd"])


def test_paired_comparison_clearly_better_best() -> None:
    ref = [0.85, 0.83, 0.88, 0.84, 0.86]
    runs = cell_runs(0.25, 512, ref) + cell_runs(0.5, 1024, [r + d for r, d in
                                                           zip(ref, [0.1, 0.09, 0.11, 0.1,
                                                                     0.12])])
    c = paired_comparison(runs)
    assert c["status"] == "compared" and c["best"] == (0.5, 1024)
    assert c["folds"] == [0, 1, 2, 3, 4]
    assert c["differences"] == pytest.approx([0.1, 0.09, 0.11, 0.1, 0.12])
    assert c["mean_difference"] == pytest.approx(0.104)
    assert c["ttest_p"] < 0.001 and c["larger_than_noise"]
    assert "larger than the folds' noise" in c["verdict"]
    # with 5 folds the exact signed-rank test cannot go below 2/32: said, not hidden
    assert c["wilcoxon_p"] == pytest.approx(0.0625)
    assert "cannot go below 0.0625" in c["wilcoxon_note"]
    assert "its least possible p is 0.0625" in c["verdict"]
    assert "cannot confirm it with so few folds" in c["verdict"]


def test_paired_comparison_noise_cannot_be_told_apart() -> None:
    ref = [0.85, 0.90, 0.80, 0.88, 0.82, 0.86]
    runs = cell_runs(0.25, 512, ref) + cell_runs(
        1.0, 256, [r + d for r, d in zip(ref, [0.05, -0.04, 0.06, -0.03, 0.02, -0.01])])
    c = paired_comparison(runs)
    assert c["best"] == (1.0, 256) and c["mean_difference"] > 0
    assert c["ttest_p"] > 0.05 and not c["larger_than_noise"]
    assert c["wilcoxon_p"] is not None and c["wilcoxon_p"] > 0.05
    assert "the folds cannot tell them apart" in c["verdict"]


def test_paired_comparison_best_is_the_reference() -> None:
    runs = cell_runs(0.25, 512, [0.95, 0.94, 0.96]) + cell_runs(0.5, 512, [0.9, 0.9, 0.91])
    c = paired_comparison(runs)
    assert c["status"] == "best is reference" and c["best"] == (0.25, 512)
    assert "is also the best" in c["verdict"] and c["ttest_p"] is None


def test_paired_comparison_few_folds_and_missing_reference() -> None:
    runs = cell_runs(0.25, 512, [0.80, 0.82, 0.81]) + cell_runs(0.5, 128, [0.9, 0.93, 0.92])
    c = paired_comparison(runs)
    assert c["wilcoxon_p"] is None and "needs at least 5" in c["wilcoxon_note"]
    assert c["ttest_p"] is not None and len(c["folds"]) == 3
    assert c["larger_than_noise"] and c["ttest_p"] < 0.01
    assert "The signed-rank test cannot be run: only 3 paired fold(s)" in c["verdict"]
    gone = paired_comparison(cell_runs(0.5, 128, [0.9, 0.93]))
    assert gone["status"] == "no reference" and "no finished cnn-mel run" in gone["verdict"]
    assert paired_comparison([], model="mfcc-rf")["status"] == "no runs"


def test_paired_comparison_ties_go_to_auc_then_the_paper() -> None:
    same = [1.0, 1.0, 1.0]
    runs = (cell_runs(0.25, 512, same, [0.99, 0.99, 0.99])
            + cell_runs(1.0, 64, same, [0.99, 0.99, 0.99])
            + cell_runs(0.25, 256, same, [0.98, 0.98, 0.98]))
    assert paired_comparison(runs)["status"] == "best is reference"
    runs += cell_runs(0.125, 64, same, [1.0, 1.0, 1.0])
    assert paired_comparison(runs)["best"] == (0.125, 64)


def study_runs() -> tuple[list[dict], dict]:
    """A 3 x 3 grid of cnn-mel (one cell invalid, one with a failed fold) and mfcc-rf at the
    paper's choice; 5 folds."""
    accs = {(0.125, 256): [0.80, 0.82, 0.78, 0.81, 0.79],
            (0.125, 512): [0.84, 0.85, 0.83, 0.86, 0.82],
            (0.25, 256): [0.90, 0.91, 0.89, 0.92, 0.90],
            (0.25, 512): [0.93, 0.95, 0.94, 0.92, 0.96],
            (0.25, 1024): [0.94, 0.93, 0.95, 0.94, 0.93],
            (0.5, 256): [0.97, 0.98, 0.96, 0.99, 0.97],
            (0.5, 512): [0.95, 0.96, 0.94, 0.97, 0.95],
            (0.5, 1024): [0.96, 0.97, 0.95, 0.96, 0.94]}
    runs = [r for cell, a in accs.items() for r in cell_runs(*cell, a)]
    runs = [r for r in runs if not ((r["long_s"], r["short_points"]) == (0.125, 512)
                                    and r["fold"] == 3)]
    runs.append(run(0.125, 512, "cnn-mel", 3, None, status="failed", reason="CUDA error"))
    runs += cell_runs(0.25, 512, [0.75, 0.77, 0.74, 0.76, 0.78], model="mfcc-rf")
    return runs, accs


def test_write_outputs_writes_the_five_files(tmp_path) -> None:
    runs, accs = study_runs()
    base = BuildConfig(feature=FeatureConfig(sample_rate=4096, fmax=1500.0, n_mels=40),
                       split=SplitConfig(fractions=(0.6, 0.3, 0.1), seed=7),
                       device="cpu", strict=True, workers=2)
    cfg = StudyConfig(long_s=(0.125, 0.25, 0.5), short_points=(256, 512, 1024),
                      models=("cnn-mel", "mfcc-svm", "mfcc-rf"), folds=5, build=base)
    notes = ["120 recordings from 24 sensors (60 leak, 60 no-leak)",
             "0.125 s / 1024 points: invalid (a long segment of 512 samples is shorter "
             "than one frame)", "mfcc-svm: no runs yet"]
    paths = write_outputs(tmp_path / "study", runs, cfg, base, notes)
    names = ["summary.csv", "segmentation.png", "models.png", "study.md", "best_build.toml"]
    assert [p.name for p in paths] == names
    assert all(p.is_file() for p in paths)
    assert not list((tmp_path / "study").glob("*.tmp"))
    assert_png(paths[1])
    assert_png(paths[2])

    with paths[0].open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert len(rows) == 9  # 8 cnn-mel cells and mfcc-rf's one

    md = paths[3].read_text()
    assert "## Table 1 — segmentation grid (cnn-mel, accuracy)" in md
    assert "### AUC (cnn-mel)" in md and "## Table 2 — model comparison at 0.25 s / 512" in md
    for cell, a in accs.items():
        shown = f"{np.mean(a):.3f} ± {np.std(a, ddof=1):.3f}"
        if cell != (0.125, 512):
            assert shown in md, (cell, shown)
    best = f"**{np.mean(accs[(0.5, 256)]):.3f} ± {np.std(accs[(0.5, 256)], ddof=1):.3f}**"
    assert best in md
    grid_row = next(line for line in md.splitlines() if line.startswith("| 0.125 |"))
    assert grid_row.rstrip().endswith("| — |")  # the invalid cell
    rf = [0.75, 0.77, 0.74, 0.76, 0.78]
    rf_line = next(line for line in md.splitlines() if line.startswith("| mfcc-rf"))
    assert f"{np.mean(rf):.3f} ± {np.std(rf, ddof=1):.3f}" in rf_line and "0.7578" in rf_line
    svm_line = next(line for line in md.splitlines() if line.startswith("| mfcc-svm"))
    assert svm_line.startswith("| mfcc-svm (MFCC + SVM) | 0 | — |") and "0.8385" in svm_line
    assert "| 0.940 ± 0.016 † |" in md  # the paper's choice marked in the grid
    assert "0.9876" in md and "Ma et al. (2025, Table 2) report on their own" in md
    assert paired_comparison(runs)["verdict"] in md
    assert "larger than the folds' noise" in md  # 0.5 s / 256 beats 0.25 s / 512 by ~0.034
    assert "Wilcoxon signed-rank test:" in md and "Paired t-test: p = " in md
    assert "sample standard deviation" in md
    assert "- failed: 0.125 s / 512 points, cnn-mel, fold 3: CUDA error" in md
    assert all(f"- {n}" in md for n in notes)

    text = paths[4].read_text()
    assert text.startswith("# leakhunter build settings")
    assert "accuracy 0.974 ± 0.011" in text
    want = dataclasses.replace(base, feature=dataclasses.replace(base.feature, segment_s=0.5,
                                                                 n_fft=256))
    assert from_dict(BuildConfig, load_toml(paths[4])) == want


def test_write_outputs_without_the_paper_choice_or_any_run(tmp_path) -> None:
    runs = cell_runs(0.5, 256, [0.9, 0.92, 0.91]) + cell_runs(1.0, 256, [0.8, 0.82, 0.83])
    cfg = StudyConfig(long_s=(0.5, 1.0), short_points=(256,), folds=3)
    paths = write_outputs(tmp_path, runs, cfg, BuildConfig(), [])
    md = (tmp_path / "study.md").read_text()
    assert "model comparison at 0.5 s / 256 points (the best configuration; the paper's " \
           "choice has no finished run)" in md
    assert "has no finished cnn-mel run in this study" in md
    assert_png(tmp_path / "models.png")
    assert len(paths) == 5
    empty = write_outputs(tmp_path / "empty", [], cfg, BuildConfig(), [])
    assert [p.name for p in empty] == ["summary.csv", "segmentation.png", "models.png",
                                       "study.md"]
    assert "no best_build.toml" in (tmp_path / "empty" / "study.md").read_text()


def test_best_build_toml_says_what_toml_cannot_hold(tmp_path) -> None:
    from leakhunter.study.outputs import build_toml

    base = BuildConfig(feature=FeatureConfig(top_db=None))
    text = build_toml(base, ["a header"])
    assert text.startswith("# a header\n")
    assert "# top_db is none in the study" in text and "--top-db none" in text
    assert "fmax" not in text  # None by default: left out, the default applies
    path = tmp_path / "b.toml"
    path.write_text(text)
    assert from_dict(BuildConfig, load_toml(path)) == BuildConfig()  # top_db back to 80
