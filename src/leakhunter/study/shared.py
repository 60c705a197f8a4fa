"""One study over several machines (``study --storage URL``): each run a trial of one
Optuna study in a database every machine reaches, the same machinery ``tune`` uses
(:func:`leakhunter.tune.study.open_storage`, heartbeats, dead trials retried).

The first process to create the study queues every run of the plan as a waiting trial, in
the plan's order (cell by cell), and only then marks the study ready; the others wait for
that mark and check they plan the same study (same recordings, folds, settings and runs:
a machine with another plan is refused, not merged). Each process then asks for the next
waiting trial (Optuna hands each waiting trial to one process only), runs it with a
heartbeat, and tells the result with the run's ``runs.csv`` row as a user attribute. A
process killed mid-run stops beating; the next process to ask fails that trial and queues
its run again once (:mod:`leakhunter.tune.heartbeat`). When nothing is waiting, a process
writes ``runs.csv`` and the outputs from every finished trial in the database.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from ..errors import InputError
from ..tune import heartbeat
from ..tune.study import open_storage

log = logging.getLogger(__name__)

READY = "leakhunter-study"  # study user attribute: the plan, set once every run is queued
WAIT_S = 120.0  # how long a process waits for another one to finish queueing the plan


def run_name(key: tuple[str, str, int]) -> str:
    """A run's name in the database: ``cell|model|fold``."""
    return f"{key[0]}|{key[1]}|{key[2]}"


@dataclass
class Shared:
    """The study in the database, and the plan's run names in order."""

    storage: Any
    study: optuna.Study
    names: list[str]

    def next_run(self) -> tuple[optuna.Trial, tuple[str, str, int]] | None:
        """The next waiting run, claimed (its trial running, with a heartbeat owed), or
        ``None`` when nothing is waiting."""
        heartbeat.fail_dead_trials(self.study)
        while self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            with heartbeat.quiet():
                trial = self.study.ask()
            attrs = trial.user_attrs
            if not (attrs.get("planned") or "retry_of" in attrs):
                # another process took the last waiting run between the look and the ask:
                # Optuna made a new trial, which is no run; close it
                trial.set_user_attr("reason", "nothing was left to run")
                self.study.tell(trial, state=TrialState.FAIL)
                return None
            cell, model, fold = trial.suggest_categorical("run", self.names).split("|")
            return trial, (cell, model, int(fold))
        return None

    def beating(self, trial: optuna.Trial) -> heartbeat.Beating:
        return heartbeat.Beating(self.storage, self.study, trial.number)

    def release(self, trial: optuna.Trial) -> None:
        """Give a run back unfinished (this process is stopping): its trial fails and the
        run is queued again at once, for this or another process."""
        trial.set_user_attr("reason", "interrupted; queued again")
        self.study.tell(trial, state=TrialState.FAIL)
        self.study.enqueue_trial({"run": trial.params["run"]}, user_attrs={"planned": True})

    def finish(self, trial: optuna.Trial, row: dict[str, Any]) -> None:
        """Tell the run's result; its ``runs.csv`` row travels as a user attribute."""
        trial.set_user_attr("row", json.loads(json.dumps(row, default=str)))
        if row["status"] == "ok":
            value = row.get("accuracy")
            self.study.tell(trial, float(value) if value == value else 0.0)  # NaN-safe
        else:
            self.study.tell(trial, state=TrialState.FAIL)

    def rows(self) -> list[dict[str, Any]]:
        """Every finished run's row in the database (the latest of a retried run)."""
        out: dict[str, dict[str, Any]] = {}
        for trial in self.study.get_trials(deepcopy=False,
                                           states=(TrialState.COMPLETE, TrialState.FAIL)):
            row = trial.user_attrs.get("row")
            if row:
                out[run_name((row["cell"], row["model"], int(row["fold"])))] = row
        return [out[n] for n in self.names if n in out]


def open_shared(url: str, name: str, plan: list[tuple[str, str, int]],
                identity: dict[str, Any]) -> Shared:
    """Open (or create and fill) the study ``name`` at ``url`` for ``plan``; raises
    :class:`InputError` when the study there plans another study."""
    storage = open_storage(url)
    names = [run_name(k) for k in plan]
    mark = {**identity, "runs": names}
    try:  # the database decides atomically which process creates, and so fills, the study
        storage.create_new_study([StudyDirection.MAXIMIZE], name)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    study = optuna.load_study(study_name=name, storage=storage,
                              sampler=optuna.samplers.RandomSampler(seed=0))
    if created:
        for run in names:
            study.enqueue_trial({"run": run}, user_attrs={"planned": True})
        study.set_user_attr(READY, json.loads(json.dumps(mark)))
        log.info("study %r: %d runs queued in the database", name, len(names))
    else:
        waited = time.monotonic()
        while READY not in study.user_attrs:
            if time.monotonic() - waited > WAIT_S:
                raise InputError(f"study {name!r}: another process created it but has not "
                                 f"queued its runs within {WAIT_S:g} s")
            time.sleep(1.0)
        saved = study.user_attrs[READY]
        different = sorted(k for k in mark if saved.get(k) != json.loads(json.dumps(mark[k])))
        if different:
            raise InputError(f"study {name!r} in the database plans another study (its "
                             f"{', '.join(different)} differ): give every machine the same "
                             f"recordings and settings, or another --study-name")
    return Shared(storage, study, names)
