"""What a study leaves in STUDY_DIR, and its log lines.

``trials.csv`` (every trial: state, objective values, settings, epochs, seconds),
``best_config.toml`` (the best trial's train settings, which ``leakhunter train --config``
accepts as they are; in a multi-objective study the most accurate Pareto-optimal trial,
and every Pareto-optimal trial's in ``pareto/``), ``plots/`` and ``summary.json``. Each file
is written under a temporary name and moved into place, so processes sharing the folder
never see half a file.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..config import toml_value
from ..runtime import safe_write
from .heartbeat import died_notes
from .space import REPORTED, SPACE

log = logging.getLogger(__name__)

STUDY_FILES = ("trials", "trials.csv", "best_config.toml", "pareto", "plots", "summary.json")
STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
          TrialState.FAIL: "failed", TrialState.RUNNING: "running",
          TrialState.WAITING: "queued"}


def write_progress(study: optuna.Study, study_dir: Path, objective: list[str],
                   keep: set[int]) -> None:
    """``trials.csv`` and the best configuration(s): after every trial."""
    trials = study.get_trials(deepcopy=False)
    _write_trials(study_dir / "trials.csv", trials, objective, keep, died_notes(study))
    front = _front(study, objective)
    if front:
        _write_config(study_dir / "best_config.toml", front[0], study, objective)
    if len(objective) > 1:
        (study_dir / "pareto").mkdir(exist_ok=True)
        names = {f"trial-{t.number:04d}.toml" for t in front}
        for old in (study_dir / "pareto").glob("trial-*.toml"):
            if old.name not in names:
                old.unlink(missing_ok=True)
        for t in front:
            _write_config(study_dir / "pareto" / f"trial-{t.number:04d}.toml", t, study,
                          objective)


def write_all(study: optuna.Study, study_dir: Path, objective: list[str],
              keep: set[int]) -> dict[str, Any]:
    """Every output, the closing log lines; returns the summary (also ``summary.json``)."""
    from .plots import write_study_plots

    write_progress(study, study_dir, objective, keep)
    trials = study.get_trials(deepcopy=False)
    counts = {name: sum(STATES.get(t.state) == name for t in trials)
              for name in ("complete", "pruned", "failed", "running", "queued")}
    front = _front(study, objective)
    plots = write_study_plots(study, study_dir / "plots", objective, [t.number for t in front])
    summary = {
        "study": study.study_name, "objective": objective, "trials": len(trials), **counts,
        "best": [_described(t, objective) for t in front[:1]],
        "pareto_front": [_described(t, objective) for t in front] if len(objective) > 1
        else [],
        "files": {"trials": str(study_dir / "trials.csv"),
                  "best_config": str(study_dir / "best_config.toml") if front else None,
                  "plots": [str(p) for p in plots]},
    }
    safe_write.write_json(study_dir / "summary.json", summary)
    if front:
        best = summary["best"][0]
        log.info("best: trial %d, %s; run directory %s", best["number"],
                 values_text(best["values"]), best["run_dir"])
        log.info("best settings: %s", ", ".join(f"{k}={_short(v)}"
                                               for k, v in best["params"].items()))
    if len(objective) > 1:
        log.info("Pareto front (%d trial(s)):", len(front))
        for item in summary["pareto_front"]:
            log.info("  trial %4d  %s", item["number"], values_text(item["values"]))
    # trials still running (in other processes) or queued (retries, enqueued settings)
    # are named too, so the counts add up to the total
    others = ", ".join(f"{n} {name}" for name in ("running", "queued")
                       if (n := sum(STATES.get(t.state) == name for t in trials)))
    log.info("%d trial(s): %d complete, %d pruned, %d failed%s", len(trials),
             counts["complete"], counts["pruned"], counts["failed"],
             f", {others}" if others else "")
    return summary


def progress_line(study: optuna.Study, number: int, objective: list[str],
                  elapsed: float) -> str:
    """``trial 7 complete: val_file_f1 0.9512; 8 epochs in 41 s | best ... | counts | time``."""
    trials = study.get_trials(deepcopy=False)
    t = next(x for x in trials if x.number == number)
    state = STATES[t.state]
    if t.state == TrialState.COMPLETE:
        result = values_text(dict(zip(objective, t.values)))
    else:
        result = t.user_attrs.get("failure") or t.user_attrs.get("pruned") or ""
    front = _front(study, objective)
    if len(objective) > 1:
        best = f"Pareto front {len(front)} trial(s)"
    elif front:
        best = f"best {front[0].values[0]:.4f} (trial {front[0].number})"
    else:
        best = "no complete trial yet"
    counts = ", ".join(f"{sum(STATES.get(x.state) == s for x in trials)} {s}"
                       for s in ("complete", "pruned", "failed"))
    tags = (["baseline: train defaults"] if t.user_attrs.get("baseline") else []) + \
        ([f"retry of trial {t.user_attrs['retry_of']}"] if "retry_of" in t.user_attrs else [])
    what = f"trial {number}" + (f" ({'; '.join(tags)})" if tags else "")
    return (f"{what} {state}: {result}; {t.user_attrs.get('epochs', 0)} epoch(s) in "
            f"{_seconds(t):.0f} s | {best} | {counts} | {elapsed / 60:.1f} min elapsed")


def _front(study: optuna.Study, objective: list[str]) -> list[FrozenTrial]:
    """The best trial (single objective) or the Pareto front, most accurate first."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    if len(objective) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1]))


def _described(t: FrozenTrial, objective: list[str]) -> dict[str, Any]:
    return {"number": t.number, "values": dict(zip(objective, t.values)),
            "params": dict(t.params), "run_dir": t.user_attrs.get("run_dir"),
            "parameters": t.user_attrs.get("parameters"),
            "latency_us": t.user_attrs.get("latency_us")}


def values_text(values: dict[str, float]) -> str:
    """``val_file_f1 0.9512, parameters 19,226``: objective values for people."""
    return ", ".join(f"{k} {v:.4f}" if k.startswith("val_") else
                     f"{k} {v:,.0f}" if k == "parameters" else f"{k} {v:,.4g}"
                     for k, v in values.items())


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _seconds(t: FrozenTrial) -> float:
    if t.datetime_start is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds() \
        if t.datetime_complete else 0.0


def note(t: FrozenTrial, died: dict[int, str], retried_as: dict[int, int]) -> str:
    """The note column of trials.csv: why a trial failed or was pruned (``died``: the notes
    of trials whose process died), which trial retries it (``retried_as``: {trial number:
    its retry's number}), which trial it retries, and the baseline mark, e.g.
    ``process died (no heartbeat for over 180 s); retried as trial 3; baseline`` and
    ``retry of trial 0; baseline``. A Ctrl-C'd trial reads alike: ``interrupted (SIGINT);
    retried as trial 3``."""
    parts = []
    if t.state == TrialState.FAIL:
        parts.append(t.user_attrs.get("failure") or died.get(t.number) or "")
    elif t.state == TrialState.PRUNED:
        parts.append(t.user_attrs.get("pruned") or "")
    if t.number in retried_as:
        parts.append(f"retried as trial {retried_as[t.number]}")
    if "retry_of" in t.user_attrs:
        parts.append(f"retry of trial {t.user_attrs['retry_of']}")
    if t.user_attrs.get("baseline"):
        parts.append("baseline")
    return "; ".join(p for p in parts if p)


def _write_trials(path: Path, trials: list[FrozenTrial], objective: list[str],
                  keep: set[int], died: dict[int, str]) -> None:
    seen = {name for t in trials for name in t.params}
    params = [p.name for p in SPACE if p.name in seen]
    costs_known = ("parameters", "latency_us")  # measured for every trial that trained
    costs = [c for c in costs_known if c not in objective]  # (a column once each)
    head = ["number", "state", *objective, "epochs", "seconds", *params, *costs,
            "run_kept", "note", "started"]
    retried_as = {t.user_attrs["retry_of"]: t.number for t in trials
                  if "retry_of" in t.user_attrs}
    with safe_write.writing(path, f"writing {path.name}", temp=_temp(path)) as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for t in trials:
            values = list(t.values) if t.values else [None] * len(objective)
            if t.state == TrialState.PRUNED and t.intermediate_values and \
                    objective[0] == REPORTED:  # its last report is of the objective
                values[0] = t.intermediate_values[max(t.intermediate_values)]
            values = [t.user_attrs.get(name) if v is None and name in costs_known else v
                      for name, v in zip(objective, values)]  # a cost known, not a value
            w.writerow([t.number, STATES.get(t.state, t.state.name.lower()),
                        *[_cell(v) for v in values], t.user_attrs.get("epochs", ""),
                        f"{_seconds(t):.1f}", *[_cell(t.params.get(p)) for p in params],
                        *[_cell(t.user_attrs.get(c, "")) for c in costs], t.number in keep,
                        note(t, died, retried_as),
                        t.datetime_start.isoformat(timespec="seconds")
                        if t.datetime_start else ""])


def _temp(path: Path) -> Path:
    """A temporary name of this process's own: processes sharing STUDY_DIR write the
    same outputs."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def _write_config(path: Path, t: FrozenTrial, study: optuna.Study,
                  objective: list[str]) -> None:
    header = [f"# leakhunter train settings of trial {t.number} of study "
              f"{study.study_name!r}: {values_text(dict(zip(objective, t.values)))}",
              "# use: leakhunter train DATASET_DIR --out RUN_DIR --config THIS_FILE "
              "(flags override it, e.g. --epochs)"]
    safe_write.write_text(path, to_toml(t.user_attrs["train_config"], header),
                          f"writing {path.name}", temp=_temp(path))


def to_toml(tree: dict[str, Any], header: list[str] = ()) -> str:
    """A settings tree as TOML: scalars first, then one table per nested dict. ``None``
    has no TOML form; such a key is left out (commented), so its default applies."""
    lines = list(header)
    tables = []
    for key, value in tree.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {key}: not set")
        else:
            lines.append(f"{key} = {toml_value(value)}")
    for key, table in tables:
        lines += ["", f"[{key}]"]
        lines += [f"{k} = {toml_value(v)}" if v is not None else f"# {k}: not set"
                  for k, v in table.items()]
    return "\n".join(lines) + "\n"


