"""The numbers of a study's results: ``runs.csv`` read back, summarised over folds per
configuration and model, the best configuration picked, and that best compared fold by
fold with the paper's choice (Ma et al. 2025: a 0.25 s long segment, 512-point frames).

A run is one configuration x model x fold. ``runs.csv`` may hold a fold twice (a failed
run done again when the study resumed): the last finished row counts, else the last one.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PAPER_CHOICE, STUDY_MODELS
from ..errors import InputError
from .scoring import METRICS

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("long_s", "short_points", "model", "folds", "failed",
                   *(f"{m}_{s}" for m in METRICS for s in ("mean", "sd")), "seconds_mean")
"""The columns of ``summary.csv``: one row per configuration and model; ``folds`` finished,
``failed`` runs; each metric's mean and sample sd (ddof=1) over the finished folds."""

ALPHA = 0.05  # the p-value below which a difference is taken as larger than the folds' noise
MIN_WILCOXON = 5  # fewest paired folds the signed-rank test is run on


def read_runs(path: str | Path) -> list[dict[str, Any]]:
    """The runs of ``runs.csv`` as dicts: numbers parsed, an empty or unreadable metric as
    NaN, recordings counts as ``int`` or ``None``. A row without a readable configuration,
    model and fold (a line cut off when a process was killed) is skipped with a warning.
    Raises :class:`InputError` when the file is missing or cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no runs file (has the study run yet?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    runs = []
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        run = _parse(row)
        if run is None:
            log.warning("%s line %d: not a whole run, skipped", path, line)
        else:
            runs.append(run)
    return runs


def _parse(row: dict[str, Any]) -> dict[str, Any] | None:
    try:
        long_s = float(row["long_s"])
        short, fold = int(float(row["short_points"])), int(float(row["fold"]))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    model = (row.get("model") or "").strip()
    if not model or not math.isfinite(long_s):
        return None
    run: dict[str, Any] = {"cell": (row.get("cell") or "").strip(), "long_s": long_s,
                           "short_points": short, "model": model, "fold": fold}
    for name in (*METRICS, "threshold", "seconds"):
        run[name] = number(row.get(name))
    for name in ("train_recordings", "test_recordings"):
        value = number(row.get(name))
        run[name] = int(value) if math.isfinite(value) else None
    status = (row.get("status") or "").strip().lower()
    run["status"] = status or ("ok" if math.isfinite(run["accuracy"]) else "failed")
    run["reason"] = (row.get("reason") or "").strip()
    return run


def number(text: Any) -> float:
    """``text`` as a float; NaN for empty, ``"nan"`` or anything unreadable."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def unique_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per configuration, model and fold: the last finished, else the last."""
    chosen: dict[tuple, dict[str, Any]] = {}
    for r in runs:
        key = (r["long_s"], r["short_points"], r["model"], r["fold"])
        old = chosen.get(key)
        if old is None or r["status"] == "ok" or old["status"] != "ok":
            chosen[key] = r
    return list(chosen.values())


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd (ddof=1) of the finite ``values``; NaN sd with one, both NaN with
    none."""
    v = np.asarray([x for x in values if math.isfinite(x)], np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def _order(key: tuple) -> tuple:
    long_s, short, model = key
    rank = STUDY_MODELS.index(model) if model in STUDY_MODELS else len(STUDY_MODELS)
    return rank, model, long_s, short


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (long_s, short_points, model) with the :data:`SUMMARY_COLUMNS`: the
    finished folds (failed runs counted apart, left out of the means), each metric's mean
    and sd over the folds where it is defined (AUC is not for a one-class test fold), and
    the mean seconds of a finished run. Ordered by model, then long, then short."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in unique_runs(runs):
        groups.setdefault((r["long_s"], r["short_points"], r["model"]), []).append(r)
    rows = []
    for key in sorted(groups, key=_order):
        ok = [r for r in groups[key] if r["status"] == "ok"]
        row: dict[str, Any] = {"long_s": key[0], "short_points": key[1], "model": key[2],
                               "folds": len(ok), "failed": len(groups[key]) - len(ok)}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_sd"] = mean_sd([r[m] for r in ok])
        row["seconds_mean"] = mean_sd([r["seconds"] for r in ok])[0]
        rows.append(row)
    return rows


def distance(cell: tuple[float, int], reference: tuple[float, int] = PAPER_CHOICE) -> float:
    """How far configuration ``(long_s, short_points)`` is from ``reference``, in octaves."""
    return abs(math.log2(cell[0] / reference[0])) + abs(math.log2(cell[1] / reference[1]))


def best_row(summary: list[dict[str, Any]], model: str, metric: str = "accuracy",
             reference: tuple[float, int] = PAPER_CHOICE) -> dict[str, Any] | None:
    """The summary row of ``model``'s best configuration by mean ``metric``, ties by mean
    AUC, then by closeness to ``reference``. Only configurations with the most finished
    folds compete (a mean over fewer folds is not comparable); ``None`` without any."""
    rows = [r for r in summary if r["model"] == model and r["folds"] > 0
            and math.isfinite(r[f"{metric}_mean"])]
    if not rows:
        return None
    most = max(r["folds"] for r in rows)

    def rank(r: dict[str, Any]) -> tuple:
        auc = r["auc_mean"] if math.isfinite(r["auc_mean"]) else -math.inf
        return (round(r[f"{metric}_mean"], 9), round(auc, 9),
                -distance((r["long_s"], r["short_points"]), reference))

    return max((r for r in rows if r["folds"] == most), key=rank)


def fold_values(runs: list[dict[str, Any]], model: str, cell: tuple[float, int],
                metric: str) -> dict[int, float]:
    """``{fold: value}`` of ``model``'s finished runs at ``cell`` where ``metric`` is
    defined."""
    return {r["fold"]: r[metric] for r in unique_runs(runs)
            if r["model"] == model and (r["long_s"], r["short_points"]) == cell
            and r["status"] == "ok" and math.isfinite(r[metric])}


def cell_text(cell: tuple[float, int]) -> str:
    """``(0.25, 512)`` as ``"0.25 s / 512 points"``."""
    return f"{cell[0]:g} s / {cell[1]} points"


def paired_comparison(runs: list[dict[str, Any]], metric: str = "accuracy",
                      model: str = "cnn-mel",
                      reference: tuple[float, int] = PAPER_CHOICE) -> dict[str, Any]:
    """``model``'s best configuration (by mean ``metric``, see :func:`best_row`) against
    ``reference`` on the folds both finished.

    Returns ``status`` ("compared", "best is reference", "no reference", "no runs"),
    ``best`` (the cell or ``None``), ``best_mean``/``best_sd``, the paired ``folds`` with
    ``best_values``, ``reference_values`` and ``differences`` (best - reference),
    ``mean_difference``, ``wilcoxon_p``/``ttest_p`` (``None`` where a test cannot be run,
    ``wilcoxon_note``/``ttest_note`` then say why), ``larger_than_noise`` (the paired
    t-test's p < 0.05) and a ``verdict`` sentence.
    """
    out: dict[str, Any] = {
        "metric": metric, "model": model, "reference": tuple(reference), "best": None,
        "best_mean": math.nan, "best_sd": math.nan, "status": "no runs", "folds": [],
        "best_values": [], "reference_values": [], "differences": [],
        "mean_difference": math.nan, "wilcoxon_p": None, "wilcoxon_note": "",
        "ttest_p": None, "ttest_note": "", "larger_than_noise": False, "verdict": ""}
    best = best_row(summarise(runs), model, metric, reference)
    if best is None:
        out["verdict"] = f"No finished {model} runs with a {metric}: nothing to compare."
        return out
    cell = (best["long_s"], best["short_points"])
    out.update(best=cell, best_mean=best[f"{metric}_mean"], best_sd=best[f"{metric}_sd"])
    shown = f"{metric} {_pm(out['best_mean'], out['best_sd'])}"
    if cell == tuple(reference):
        out["status"] = "best is reference"
        out["verdict"] = (f"The paper's choice, {cell_text(cell)}, is also the best "
                          f"configuration of {model} here ({shown}).")
        return out
    ref = fold_values(runs, model, tuple(reference), metric)
    if not ref:
        out["status"] = "no reference"
        out["verdict"] = (f"The paper's choice, {cell_text(reference)}, has no finished "
                          f"{model} run in this study (not in the grid, or invalid at this "
                          f"sample rate); the best configuration is {cell_text(cell)} "
                          f"({shown}), compared with nothing.")
        return out
    mine = fold_values(runs, model, cell, metric)
    folds = sorted(set(mine) & set(ref))
    a = np.asarray([mine[f] for f in folds], np.float64)
    b = np.asarray([ref[f] for f in folds], np.float64)
    diffs = a - b
    out.update(status="compared", folds=folds, best_values=a.tolist(),
               reference_values=b.tolist(), differences=diffs.tolist(),
               mean_difference=float(diffs.mean()) if folds else math.nan)
    out["wilcoxon_p"], out["wilcoxon_note"] = _wilcoxon(diffs)
    out["ttest_p"], out["ttest_note"] = _ttest(a, b)
    out["larger_than_noise"] = out["ttest_p"] is not None and out["ttest_p"] < ALPHA
    out["verdict"] = _verdict(out, cell, tuple(reference))
    return out


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}" if math.isfinite(sd) else f"{mean:.3f} (one fold)"


def _wilcoxon(diffs: np.ndarray) -> tuple[float | None, str]:
    """The signed-rank test's p, or ``None`` and why it cannot be run."""
    n = len(diffs)
    if n < MIN_WILCOXON:
        return None, (f"cannot be run: only {n} paired fold(s) (it needs at least "
                      f"{MIN_WILCOXON})")
    differing = int(np.count_nonzero(diffs))
    if differing == 0:
        return None, "cannot be run: the two score the same on every fold"
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(diffs).pvalue)
    floor = 2.0 / 2 ** differing  # every difference of one sign: the exact test's least p
    note = f"p = {p:.3g}"
    if floor >= ALPHA:
        note += (f" (with {differing} differing folds it cannot go below {floor:.3g}, so "
                 f"it cannot reach {ALPHA} however large the difference)")
    return p, note


def _ttest(a: np.ndarray, b: np.ndarray) -> tuple[float | None, str]:
    """The paired t-test's p, or ``None`` and why it cannot be run."""
    if len(a) < 2:
        return None, f"cannot be run: only {len(a)} paired fold (it needs at least 2)"
    diffs = a - b
    if not np.any(diffs):
        return None, "cannot be run: the two score the same on every fold"
    if np.all(diffs == diffs[0]):  # no spread: scipy's t is infinite, p = 0
        return 0.0, "p = 0 (the same difference on every fold)"
    from scipy.stats import ttest_rel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(ttest_rel(a, b).pvalue)
    return p, f"p = {p:.3g}"


def _verdict(out: dict[str, Any], cell: tuple[float, int],
             reference: tuple[float, int]) -> str:
    n, d, metric = len(out["folds"]), out["mean_difference"], out["metric"]
    if n == 0:
        return (f"The best configuration, {cell_text(cell)}, and the paper's choice, "
                f"{cell_text(reference)}, share no finished fold: they cannot be compared.")
    side = "higher" if d >= 0 else "lower"
    head = (f"The best configuration, {cell_text(cell)}, scores {abs(d):.3f} {side} "
            f"{metric} than the paper's choice, {cell_text(reference)}, on average over "
            f"the {n} folds both finished")
    t = out["ttest_note"]
    if not out["larger_than_noise"]:
        return f"{head}; the folds cannot tell them apart (paired t-test: {t})."
    text = f"{head}; the difference is larger than the folds' noise (paired t-test: {t})."
    w = out["wilcoxon_p"]
    if w is None:
        text += f" The signed-rank test {out['wilcoxon_note']}."
    elif w >= ALPHA and 2.0 / 2 ** np.count_nonzero(out["differences"]) >= ALPHA:
        text += (f" The signed-rank test cannot confirm it with so few folds (its least "
                 f"possible p is {2.0 / 2 ** np.count_nonzero(out['differences']):.3g}).")
    elif w >= ALPHA:
        text += (f" The signed-rank test does not confirm it (p = {w:.3g}): take it as "
                 f"weak evidence.")
    else:
        text += f" The signed-rank test agrees (p = {w:.3g})."
    return text
