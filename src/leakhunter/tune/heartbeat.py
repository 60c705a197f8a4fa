"""Heartbeats of running trials: how a trial whose process died is noticed, failed and retried.

A process killed outright (SIGKILL, the kernel's out-of-memory killer, a machine that loses
power) tells the study nothing, so its trial would stay "running" for ever. Every trial a
`tune` process trains therefore records a heartbeat in the study database every
:data:`HEARTBEAT_S` seconds, from a thread of its own (:class:`Beating`) that beats
independently of epochs, so a trial whose epochs are slow is never mistaken for a dead one.
Before each trial, every process checks the study (:func:`fail_dead_trials`): a running
trial whose last heartbeat is more than :data:`GRACE_S` seconds old is marked failed, and
its settings are queued again once (:class:`RetryDead`), carrying its baseline mark.

This is Optuna's own heartbeat (``heartbeat_interval``/``grace_period`` of the RDB storage,
:func:`optuna.storages.fail_stale_trials`). Only ``Study.optimize`` starts its heartbeat
thread and check; trials here are asked and told one at a time, so this module does both.

The note of a dead trial lives in the study's user attribute ``died:N``: Optuna marks the
trial failed before the callback sees it and refuses any change to a finished trial.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

# A heartbeat a minute costs the database one row update a minute per running trial. Three
# missed heartbeats (a database unreachable for three minutes) before a trial is called
# dead: short against trials that train for many minutes, and a live trial is not called
# dead for a slow database. A dead machine's trial is failed by the first check after
# that: any process starting, starting a trial, or finishing its run.
HEARTBEAT_S = 60
GRACE_S = 180
# Retries of a trial's settings after its process died: a setting that kills its process
# (the kernel's out-of-memory killer) is not retried for ever.
MAX_RETRIES = 1

DIED = "died:"  # + trial number: the study user attribute holding a dead trial's note


def storage_options() -> dict[str, Any]:
    """``RDBStorage`` keyword arguments that switch heartbeats on: the interval, the grace
    period and :class:`RetryDead` (read when called, so tests can make them short)."""
    return {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S,
            "heartbeat_stale_trial_callback": RetryDead(GRACE_S)}


@contextmanager
def quiet() -> Iterator[None]:
    """Optuna warns that heartbeats are experimental and "supposed to be used with
    Study.optimize" (on every ``ask``); both are known and intended here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        yield


def retry_attrs(trial: FrozenTrial | optuna.Trial, deaths: int) -> dict[str, Any]:
    """The user attributes of a queued retry of ``trial``: what it retries, the baseline
    mark (so a study's baseline gets its value even when its first try is lost), and
    ``deaths``: how many trials of this retry chain died so far (see :data:`MAX_RETRIES`)."""
    return {"retry_of": trial.number, "baseline": trial.user_attrs.get("baseline", False),
            "deaths": deaths}


def died_notes(study: optuna.Study) -> dict[int, str]:
    """``{trial number: note}`` of the trials failed because their process died."""
    return {int(key[len(DIED):]): note for key, note in study.user_attrs.items()
            if key.startswith(DIED)}


def fail_dead_trials(study: optuna.Study) -> None:
    """Mark failed every running trial of ``study`` whose heartbeat is older than the grace
    period, and queue each one's retry (the storage's :class:`RetryDead`). Safe in several
    processes at once: each dead trial is failed, noted and retried by one of them only.
    Trials without any heartbeat (a `tune` older than heartbeats) are left as they are."""
    with quiet():
        optuna.storages.fail_stale_trials(study)


class RetryDead:
    """The storage's stale-trial callback: notes why the trial failed and queues its
    settings again, unless its retry chain has died :data:`MAX_RETRIES` times already.
    Called once per dead trial, by the process that failed it."""

    def __init__(self, grace_s: int):
        self.grace_s = grace_s

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        note = f"process died (no heartbeat for over {self.grace_s} s)"
        deaths = trial.user_attrs.get("deaths", 0) + 1
        if deaths <= MAX_RETRIES:
            study.enqueue_trial(trial.params, user_attrs=retry_attrs(trial, deaths))
            log.warning("trial %d failed: %s; its settings are queued again", trial.number,
                        note)
        else:
            times = "once" if MAX_RETRIES == 1 else f"{MAX_RETRIES} times"
            note += f"; not retried again (its settings were retried {times} already)"
            log.warning("trial %d failed: %s", trial.number, note)
        study.set_user_attr(f"{DIED}{trial.number}", note)


class Beating:
    """``with Beating(storage, study, number):`` records trial ``number``'s heartbeat now,
    then every :data:`HEARTBEAT_S` seconds from a thread, until the block ends however it
    ends (the thread is stopped and joined on the way out). A heartbeat that cannot be
    written (the database briefly unreachable) is logged and tried again at the next beat;
    the grace period allows for a few."""

    def __init__(self, storage: Any, study: optuna.Study, number: int,
                 interval_s: float | None = None):
        self.record: Callable[[int], None] = storage.record_heartbeat
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study.study_name), number)
        self.interval_s = HEARTBEAT_S if interval_s is None else interval_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{number}",
                                       daemon=True)

    def __enter__(self) -> Beating:
        # the first heartbeat before any work: a trial killed at once is noticed too
        # (Optuna never calls a running trial without a heartbeat dead)
        self.record(self.trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        while not self.stop.wait(self.interval_s):
            try:
                self.record(self.trial_id)
            except Exception as exc:  # SQLAlchemy and driver errors alike
                log.warning("trial heartbeat not recorded (%s); trying again in %g s",
                            str(exc).strip().splitlines()[0] if str(exc).strip()
                            else type(exc).__name__, self.interval_s)
