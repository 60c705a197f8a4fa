"""What a study leaves in STUDY_DIR besides ``runs.csv``: ``summary.csv`` (each configuration
and model over its folds), ``segmentation.png`` and ``models.png``, ``study.md`` (the
paper's Fig. 3 and Table 2 laid out on the user's recordings, the best configuration
tested against the paper's choice, what the error bars mean, the notes) and
``best_build.toml`` (``leakhunter build --config`` settings with the best configuration).

Each file is written whole or not at all (:mod:`leakhunter.runtime.safe_write`). The
numbers come from :mod:`.summary`; :func:`read_runs`, :func:`summarise` and
:func:`paired_comparison` are re-exported here.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

from ..config import PAPER_CHOICE, BuildConfig, StudyConfig, to_dict, toml_value
from ..runtime import safe_write
from .charts import LABELS, models_plot, segmentation_plot
from .scoring import METRICS
from .summary import (
    SUMMARY_COLUMNS,
    best_row,
    cell_text,
    paired_comparison,
    read_runs,
    summarise,
    unique_runs,
)

__all__ = ["PAPER_ACCURACY", "SUMMARY_COLUMNS", "paired_comparison", "read_runs",
           "summarise", "write_outputs"]

log = logging.getLogger(__name__)

MODEL_NAMES = {"cnn-mel": "mel CNN", "cnn-raw": "raw CNN", "mfcc-rf": "MFCC + random forest",
               "mfcc-svm": "MFCC + SVM", "mfcc-xgboost": "MFCC + XGBoost"}
PAPER_ACCURACY = {"cnn-mel": 0.9876, "cnn-raw": 0.9568, "mfcc-rf": 0.7578,
                  "mfcc-svm": 0.8385, "mfcc-xgboost": 0.8634}
"""The accuracy Ma et al. (2025, Table 2) report on their own recordings: context only."""


def write_outputs(study_dir: str | Path, runs: list[dict[str, Any]], cfg: StudyConfig,
                  build_base: BuildConfig, notes: list[str]) -> list[Path]:
    """Write ``summary.csv``, ``segmentation.png``, ``models.png``, ``study.md`` and, when a
    configuration finished, ``best_build.toml`` into ``study_dir``; returns their paths.

    ``runs``: :func:`read_runs`'s rows; ``build_base``: the build settings the study's
    configurations were put into; ``notes``: lines for the report's notes (recordings,
    invalid configurations, skipped models), written as they are."""
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    runs = unique_runs(runs)
    summary = summarise(runs)
    model = "cnn-mel" if "cnn-mel" in cfg.models else cfg.models[0]
    best = best_row(summary, model)
    best_cell = (best["long_s"], best["short_points"]) if best else None
    comparison = paired_comparison(runs, "accuracy", model)
    long_s = sorted({*cfg.long_s, *(r["long_s"] for r in summary)})
    short = sorted({*cfg.short_points, *(r["short_points"] for r in summary)})
    models = list(cfg.models) + sorted({r["model"] for r in summary} - set(cfg.models))
    at = _comparison_cell(summary, best_cell)
    paths = [_write_summary(study_dir / "summary.csv", summary),
             segmentation_plot(study_dir / "segmentation.png", summary, model, long_s, short,
                               best_cell),
             models_plot(study_dir / "models.png", runs, summary, models, at,
                         f"Models at {cell_text(at)} ({_why(at, best_cell)})")]
    text = _report(study_dir, runs, summary, cfg, build_base, notes, model, best, comparison,
                   (long_s, short, models, at))
    paths.append(safe_write.write_text(study_dir / "study.md", text, "writing study.md"))
    if best is not None:
        paths.append(write_best_build(study_dir / "best_build.toml", build_base, best,
                                      study_dir))
    return paths


def _comparison_cell(summary: list[dict[str, Any]],
                     best: tuple[float, int] | None) -> tuple[float, int]:
    """The paper's choice when any model finished a fold there, else the best."""
    if best is None or any((r["long_s"], r["short_points"]) == PAPER_CHOICE and r["folds"]
                           for r in summary):
        return PAPER_CHOICE
    return best


def _why(cell: tuple[float, int], best: tuple[float, int] | None) -> str:
    if cell == PAPER_CHOICE:
        return "the paper's choice" + (", also the best here" if cell == best else "")
    return "the best configuration; the paper's choice has no finished run"


def _write_summary(path: Path, summary: list[dict[str, Any]]) -> Path:
    with safe_write.writing(path, "writing summary.csv") as fh:
        writer = csv.writer(fh)
        writer.writerow(SUMMARY_COLUMNS)
        for row in summary:
            writer.writerow([_csv(row[c]) for c in SUMMARY_COLUMNS])
    return path


def _csv(value: Any) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


# --- study.md ---------------------------------------------------------------------------------

def _pm(row: dict[str, Any] | None, metric: str) -> str:
    """A summary row's ``metric`` as "0.981 ± 0.012"; a dash when it has none."""
    if row is None or not row["folds"] or not math.isfinite(row[f"{metric}_mean"]):
        return "—"
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    return f"{mean:.3f} ± {sd:.3f}" if math.isfinite(sd) else f"{mean:.3f} (1 fold)"


def _find(summary: list[dict[str, Any]], model: str,
          cell: tuple[float, int]) -> dict[str, Any] | None:
    return next((r for r in summary if r["model"] == model
                 and (r["long_s"], r["short_points"]) == cell), None)


def _grid_table(summary: list[dict[str, Any]], model: str, long_s: list[float],
                short: list[int], metric: str, best: tuple[float, int] | None) -> list[str]:
    lines = ["| long segment (s) \\ short frame (points) | " + " | ".join(map(str, short))
             + " |", "|---" + "|---:" * len(short) + "|"]
    for ls in long_s:
        cells = []
        for sp in short:
            text = _pm(_find(summary, model, (ls, sp)), metric)
            text = f"**{text}**" if (ls, sp) == best and text != "—" else text
            cells.append(f"{text} †" if (ls, sp) == PAPER_CHOICE else text)
        lines.append(f"| {ls:g} | " + " | ".join(cells) + " |")
    return lines


def _report(study_dir: Path, runs: list[dict[str, Any]], summary: list[dict[str, Any]],
            cfg: StudyConfig, build: BuildConfig, notes: list[str], model: str,
            best: dict[str, Any] | None, comparison: dict[str, Any],
            layout: tuple) -> str:
    long_s, short, models, at = layout
    best_cell = (best["long_s"], best["short_points"]) if best else None
    ok = [r for r in runs if r["status"] == "ok"]
    failed = [r for r in runs if r["status"] != "ok"]
    folds = (f"{cfg.folds} sensor-grouped folds (each fold's test recordings come from "
             f"sensors its models never trained on)" if cfg.folds > 1
             else "1 fold: the fixed split of the build settings")
    f = build.feature
    out = [f"# Study: segmentation grid and model comparison ({study_dir.name})", "",
           "The experiments of Ma et al. (2025; Fig. 3 and Table 2) on these recordings.", "",
           "## What was run", "",
           f"- Grid: long segments {', '.join(f'{x:g}' for x in cfg.long_s)} s x short frames "
           f"{', '.join(map(str, cfg.short_points))} points "
           f"({len(cfg.long_s) * len(cfg.short_points)} configurations).",
           f"- Models: {', '.join(cfg.models)}.",
           f"- Folds: {folds}; " + (f"{cfg.validation_share:.0%} of each fold's training "
                                    f"sensors held out" if cfg.folds > 1 else
                                    "its VALIDATION split") +
           " for early stopping and the threshold.",
           f"- Runs: {len(ok)} finished, {len(failed)} failed"
           + "".join(f"; {m} {sum(r['model'] == m for r in ok)}" for m in cfg.models) + ".",
           f"- Recordings per run: {_span(ok, 'train_recordings')} for training, "
           f"{_span(ok, 'test_recordings')} tested.",
           f"- Features: {f.sample_rate} Hz, {f.n_mels} mel bands, long segments overlapping "
           f"by {f.segment_overlap:g}, frames by {f.frame_overlap:g}.", "",
           f"## Table 1 — segmentation grid ({model}, accuracy)", "",
           *_grid_table(summary, model, long_s, short, "accuracy", best_cell), "",
           f"Cells: mean ± sd over the folds; **bold**: the best (by mean accuracy, ties by "
           f"AUC); —: no finished run; †: the paper's choice, {cell_text(PAPER_CHOICE)}.",
           "",
           f"### AUC ({model})", "",
           *_grid_table(summary, model, long_s, short, "auc", best_cell), "",
           f"## Table 2 — model comparison at {cell_text(at)} ({_why(at, best_cell)})", "",
           "| model | folds | " + " | ".join(LABELS[m] for m in METRICS)
           + " | paper's accuracy (its data) |", "|---|---:" + "|---:" * len(METRICS) + "|---:|"]
    for m in models:
        row = _find(summary, m, at)
        paper = f"{PAPER_ACCURACY[m]:.4f}" if m in PAPER_ACCURACY else "—"
        out.append(f"| {m} ({MODEL_NAMES.get(m, m)}) | {row['folds'] if row else 0} | "
                   + " | ".join(_pm(row, k) for k in METRICS) + f" | {paper} |")
    out += ["", "The last column is what Ma et al. (2025, Table 2) report on their own "
            "recordings: " + ", ".join(f"{MODEL_NAMES[k]} {v:.4f}"
                                         for k, v in PAPER_ACCURACY.items())
            + ". It is context, not a result of this study nor a target for these "
            "recordings.", "", *_comparison_text(comparison, model), "",
            "## What the error bars mean", "",
            f"Every ± is the sample standard deviation (ddof=1) of the metric over the "
            f"{cfg.folds} folds. Each fold tests other sensors than the ones its models "
            f"trained on, so the sd says how much a result depends on which sensors are "
            f"tested. A difference between two cells smaller than their sd is not evidence "
            f"that one is better. AUC is averaged over the folds whose test recordings hold "
            f"both classes. The folds share most of their training sensors, so they are not "
            f"independent: the t-test's p is, if anything, too small." if cfg.folds > 1 else
            "With one fold there is no ± to show: a spread needs two folds or more "
            "(`--folds 5`), and a result of one split may be luck of that split.", "",
            "## Best build settings", ""]
    if best is None:
        out.append("No configuration finished a run: no best_build.toml.")
    else:
        out.append(f"`best_build.toml`: the study's build settings with "
                   f"{cell_text(best_cell)}; use `leakhunter build INPUT --out DATASET_DIR "
                   f"--config best_build.toml`.")
    out += ["", "## Notes", ""]
    out += [f"- {n}" for n in notes]
    out += [f"- failed: {cell_text((r['long_s'], r['short_points']))}, {r['model']}, fold "
            f"{r['fold']}: {r['reason'] or 'no reason given'}" for r in failed]
    if not notes and not failed:
        out.append("None.")
    return "\n".join(out) + "\n"


def _span(runs: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in runs if r[key] is not None]
    if not values:
        return "unknown"
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}–{high}"


def _comparison_text(c: dict[str, Any], model: str) -> list[str]:
    out = [f"## The best configuration against the paper's choice ({model}, {c['metric']})",
           "", c["verdict"]]
    if c["status"] != "compared" or not c["folds"]:
        return out
    out += ["", "| fold | best " + cell_text(c["best"]) + " | paper's "
            + cell_text(c["reference"]) + " | difference |", "|---:|---:|---:|---:|"]
    for fold, a, b, d in zip(c["folds"], c["best_values"], c["reference_values"],
                             c["differences"]):
        out.append(f"| {fold} | {a:.3f} | {b:.3f} | {d:+.3f} |")
    out += ["", f"Mean difference {c['mean_difference']:+.3f}. Wilcoxon signed-rank test: "
            f"{c['wilcoxon_note']}. Paired t-test: {c['ttest_note']}."]
    return out


# --- best_build.toml --------------------------------------------------------------------------

def write_best_build(path: Path, base: BuildConfig, best: dict[str, Any],
                     study_dir: Path) -> Path:
    """``base`` with ``best``'s long segment and short frame as a TOML file that
    ``leakhunter build --config`` reads back to exactly that configuration."""
    feature = dataclasses.replace(base.feature, segment_s=float(best["long_s"]),
                                  n_fft=int(best["short_points"]))
    config = dataclasses.replace(base, feature=feature)
    header = [f"leakhunter build settings: the best configuration of the study in "
              f"{study_dir}",
              f"best {best['model']} by mean accuracy over {best['folds']} folds: long "
              f"segment {best['long_s']:g} s, short frame {best['short_points']} points: "
              f"accuracy {_pm(best, 'accuracy')}, AUC {_pm(best, 'auc')}",
              "use: leakhunter build INPUT --out DATASET_DIR --config best_build.toml"]
    return safe_write.write_text(path, build_toml(config, header), f"writing {path.name}")


def build_toml(config: BuildConfig, header: list[str] = ()) -> str:
    """``config`` as TOML: header comments, the scalar fields, then one table per nested
    configuration. ``None`` has no TOML form: left out where it is the default; where it
    is not, a comment says which flag sets it."""
    data, defaults = to_dict(config), to_dict(BuildConfig())
    lines = [f"# {h}" for h in header]
    lines += [line for k, v in data.items() if not isinstance(v, dict)
              for line in _entry(k, v, defaults[k])]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"]
            lines += [line for k, v in table.items() for line in _entry(k, v, defaults[key][k])]
    return "\n".join(lines) + "\n"


def _entry(key: str, value: Any, default: Any) -> list[str]:
    if value is not None:
        return [f"{key} = {toml_value(value)}"]
    if default is None:
        return []
    log.warning("best_build.toml: %s is none, which TOML cannot write; build needs "
                "--%s none", key, key.replace("_", "-"))
    return [f"# {key} is none in the study, which TOML cannot write: add "
            f"--{key.replace('_', '-')} none to the build command"]


