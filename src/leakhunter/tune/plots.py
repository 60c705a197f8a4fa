"""Study plots as PNG, drawn with matplotlib (no browser): optimisation history, parameter
importances, parallel coordinates, and the Pareto front of a multi-objective study.

They use the project's figure helpers (an Agg canvas, files moved into place when
complete), so they read like the training and evaluation plots.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from ..runtime.figures import figure, save
from .space import REPORTED, SPACE

log = logging.getLogger(__name__)

PARALLEL_AXES = 8  # the most important parameters shown in parallel coordinates


def write_study_plots(study: optuna.Study, out: Path, objective: list[str],
                      front: list[int]) -> list[Path]:
    """The plots of ``study`` in folder ``out``; returns their paths. A plot that needs
    more complete trials than there are is left out (and said so in the log)."""
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    paths = [_history(trials, objective, out / "history.png")]
    importances = _importances(study, done)
    if importances:
        paths.append(_importance_plot(importances, objective[0], out / "importances.png"))
    if len(done) >= 2:
        order = list(importances) or sorted({p for t in done for p in t.params})
        paths.append(_parallel(done, order[:PARALLEL_AXES], objective[0],
                               out / "parallel_coordinates.png"))
    if len(objective) > 1 and done:
        paths.append(_pareto(done, front, objective, out / "pareto_front.png"))
    return paths


def _history(trials: list[FrozenTrial], objective: list[str], path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    fig, ax = figure()
    name = objective[0]
    best, best_x, best_y = -math.inf, [], []
    for t in trials:
        if t.state == TrialState.COMPLETE:
            ax.scatter(t.number, t.values[0], color="tab:blue", s=22, zorder=3,
                       label="complete")
            if t.values[0] > best:
                best = t.values[0]
            best_x.append(t.number)
            best_y.append(best)
        elif t.state == TrialState.PRUNED and t.intermediate_values and name == REPORTED:
            last = t.intermediate_values[max(t.intermediate_values)]
            ax.scatter(t.number, last, color="tab:gray", marker="x", s=26, zorder=3,
                       label="pruned (last epoch reported)")
        elif t.state == TrialState.FAIL:
            ax.axvline(t.number, color="tab:red", alpha=0.35, lw=1, label="failed")
    if best_x:
        ax.step(best_x, best_y, where="post", color="tab:orange", lw=1.5, label="best so far")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        ax.legend(unique.values(), unique.keys(), loc="lower right", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
    ax.set_xlabel("trial")
    ax.set_ylabel(name.replace("_", " "))
    ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    return save(fig, path, "png")


def _importances(study: optuna.Study, done: list[FrozenTrial]) -> dict[str, float]:
    """fANOVA importances of the parameters for the first objective; empty when there are
    too few complete trials or nothing varied."""
    if len(done) < 3 or len({t.values[0] for t in done}) < 2:
        log.info("parameter importances need 3 complete trials whose %s differ; not drawn",
                 "value" if len(done[0].values if done else ()) < 2 else "first value")
        return {}
    try:
        return optuna.importance.get_param_importances(
            study, target=lambda t: t.values[0],
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError) as exc:  # e.g. no parameter common to all trials
        log.info("parameter importances not drawn: %s", exc)
        return {}


def _importance_plot(importances: dict[str, float], name: str, path: Path) -> Path:
    fig, ax = figure()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance for {name.replace('_', ' ')} (fANOVA)")
    ax.set_title("Parameter importances")
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path, "png")


def _parallel(done: list[FrozenTrial], params: list[str], name: str, path: Path) -> Path:
    """One line per complete trial across one axis per parameter, coloured by the first
    objective; each axis runs from its lowest to highest value (log axes for log ranges)."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    axes_names = params + [name]
    log_params = {p.name for p in SPACE if p.log}
    columns = []
    for p in axes_names:
        raw = [t.values[0] if p == name else t.params.get(p) for t in done]
        columns.append(_scaled(raw, p in log_params))
    values = np.array([t.values[0] for t in done])
    norm = Normalize(values.min(), values.max() if values.max() > values.min()
                     else values.min() + 1e-9)
    fig, ax = figure(size=(max(6.0, 1.1 * len(axes_names)), 4.5))
    xs = np.arange(len(axes_names))
    for i, _ in enumerate(done):
        ys = [col[0][i] for col in columns]
        ax.plot(xs, ys, color=colormaps["viridis"](norm(values[i])), alpha=0.8, lw=1.2)
    for x, (_, labels) in zip(xs, columns):
        ax.axvline(x, color="black", lw=0.6)
        ax.text(x, -0.06, labels[0], ha="center", va="top", fontsize=7)
        ax.text(x, 1.04, labels[1], ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [n.replace("_", " ") for n in axes_names], rotation=30, fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.12)
    ax.set_title("Parallel coordinates (colour: " + name.replace("_", " ") + ")")
    return save(fig, path, "png")


def _scaled(raw: list[Any], log_scale: bool) -> tuple[list[float], tuple[str, str]]:
    """Values placed on [0, 1] (missing ones at -0.1), and the axis' end labels."""
    present = [v for v in raw if v is not None]
    if not present:
        return [-0.1] * len(raw), ("", "")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        f = (lambda v: math.log10(v)) if log_scale and min(present) > 0 else float
        lo, hi = f(min(present)), f(max(present))
        span = hi - lo or 1.0
        return ([-0.1 if v is None else (f(v) - lo) / span for v in raw],
                (f"{min(present):.3g}", f"{max(present):.3g}"))
    levels = sorted({str(v) for v in present})
    step = 1.0 / max(1, len(levels) - 1)
    return ([-0.1 if v is None else levels.index(str(v)) * step for v in raw],
            (levels[0], levels[-1]))


def _pareto(done: list[FrozenTrial], front: list[int], objective: list[str],
            path: Path) -> Path:
    fig, ax = figure()
    others = [t for t in done if t.number not in front]
    best = sorted((t for t in done if t.number in front), key=lambda t: t.values[1])
    ax.scatter([t.values[1] for t in others], [t.values[0] for t in others],
               color="tab:gray", s=18, label="other trials")
    ax.step([t.values[1] for t in best], [t.values[0] for t in best], where="post",
            color="tab:red", lw=1.2)
    ax.scatter([t.values[1] for t in best], [t.values[0] for t in best], color="tab:red",
               s=30, zorder=3, label="Pareto front")
    at: dict[tuple[float, float], list[str]] = {}  # trials with equal values share a label
    for t in best:
        at.setdefault((t.values[1], t.values[0]), []).append(str(t.number))
    for xy, numbers in at.items():
        ax.annotate(", ".join(numbers), xy, fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    cost = objective[1]
    ax.set_xlabel("parameters" if cost == "parameters" else
                  "inference time per segment (µs, one CPU thread)")
    low, high = min(t.values[1] for t in done), max(t.values[1] for t in done)
    if low > 0 and high > 10 * low:  # a log axis only where it holds a labelled decade
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a log axis
    ax.set_ylabel(objective[0].replace("_", " "))
    ax.set_title("Accuracy against inference cost")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return save(fig, path, "png")
