"""The trials of `leakhunter tune`: each one asked, trained and told, one at a time.

:class:`Runner` asks the study (:mod:`.study` sets it up) for a trial, draws its settings
from the search space (:mod:`.space`), trains them through
:func:`leakhunter.training.train.train` into ``STUDY_DIR/trials/trial-NNNN``, reports each
epoch's validation file F1 to the pruner through train's ``on_epoch`` hook, and tells the
study how the trial ended (complete, pruned, failed, interrupted) before the next starts,
so no trial is left "running". While a trial trains, a thread records its heartbeat, and
before each trial the runner fails (and queues again once) the trials of processes that
died without telling the study (:mod:`.heartbeat`). After each trial it writes the
progress outputs and removes the run directories of trials that are not kept.
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import optuna
import torch
from filelock import FileLock
from optuna.trial import TrialState

from ..config import TrainConfig, TuneConfig, from_dict
from ..dataset.segments import SplitData
from ..errors import ConfigError, LeakhunterError
from ..runtime import signals
from ..training.train import train
from . import heartbeat, outputs
from .cost import inference_cost
from .space import REPORTED, Param, set_path, suggest

log = logging.getLogger(__name__)


class TrialFailed(LeakhunterError):
    """A trial cannot go on (a non-finite loss); the study records it as failed."""


def outputs_lock(study_dir: Path) -> FileLock:
    """Held while the outputs are written: processes sharing STUDY_DIR would otherwise
    write the same plot's temporary file at once."""
    return FileLock(str(study_dir / ".outputs.lock"))


def _out_of_memory(exc: RuntimeError) -> bool:
    """CUDA's out-of-memory error, or the CPU allocator's (a plain RuntimeError)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or \
        "can't allocate memory" in str(exc) or "out of memory" in str(exc)


class _TrialLogFilter(logging.Filter):
    """Keeps the console to one line per trial: the trials' own info lines (start-up,
    epochs) go to each run's ``train.log`` only, unless the console shows debug output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno >= logging.WARNING or record.name.startswith(__package__)
                or logging.getLogger("leakhunter").level <= logging.DEBUG)


class Runner:
    """Asks, trains and tells trials one at a time; writes outputs after each.

    ``study`` must carry the ``leakhunter`` identity user attribute (its ``objective``
    names the values told) and live in ``storage``, opened with heartbeats
    (:func:`.study.open_storage`); ``settings`` is the train settings tree each trial
    starts from and ``space`` what it draws. :meth:`run` raises :class:`ConfigError` when
    the space no longer fits the study; a trial's :class:`LeakhunterError` or
    out-of-memory error fails that trial only, while Ctrl-C (its settings queued again)
    and any other error end the run after the trial is recorded as failed. A trial that
    another process declared dead while it still ran (its heartbeats lost for longer than
    the grace period) is dropped, and the run goes on.
    """

    def __init__(self, study: optuna.Study, storage: Any, dataset_dir: Path,
                 study_dir: Path, cfg: TuneConfig, settings: dict[str, Any],
                 space: tuple[Param, ...], multiclass: bool, validation: SplitData):
        self.study, self.storage = study, storage
        self.dataset_dir, self.study_dir = dataset_dir, study_dir
        self.cfg, self.settings, self.space = cfg, settings, space
        self.multiclass, self.validation = multiclass, validation
        self.objective = study.user_attrs["leakhunter"]["objective"]
        self.multi = len(self.objective) > 1
        self.started = time.perf_counter()

    def run(self) -> None:
        console = logging.getLogger("leakhunter").handlers
        quiet = _TrialLogFilter()
        for handler in console:  # the trials' own log files are added later: unfiltered
            handler.addFilter(quiet)
        try:
            self._run()
        finally:
            for handler in console:
                handler.removeFilter(quiet)

    def _run(self) -> None:
        for _ in range(self.cfg.trials):
            if self.cfg.timeout_s and time.perf_counter() - self.started >= self.cfg.timeout_s:
                log.info("--timeout of %g s reached; no more trials", self.cfg.timeout_s)
                break
            signals.check()
            heartbeat.fail_dead_trials(self.study)  # their retries are asked first
            with heartbeat.quiet():
                trial = self.study.ask()
            try:
                with heartbeat.Beating(self.storage, self.study, trial.number):
                    self._one(trial)
            except Exception:
                note = heartbeat.died_notes(self.study).get(trial.number)
                if note is None:
                    raise
                # Optuna refuses to record anything more about a failed trial
                log.warning("trial %d was declared dead by another process while it still "
                            "ran (%s): its result is dropped", trial.number, note)
            with outputs_lock(self.study_dir):
                outputs.write_progress(self.study, self.study_dir, self.objective,
                                       self.keep_set())
            self._remove_finished_runs()
        heartbeat.fail_dead_trials(self.study)  # the outputs show them failed, not running

    def _one(self, trial: optuna.Trial) -> None:
        run = self.study_dir / "trials" / f"trial-{trial.number:04d}"
        settings = copy.deepcopy(self.settings)
        epochs = [0]
        try:
            drawn = suggest(trial, self.space, self.multiclass, settings)
        except ValueError as exc:  # Optuna refuses a parameter's choices changed mid-study
            trial.set_user_attr("failure", "the search space no longer fits the study")
            self.study.tell(trial, state=TrialState.FAIL)
            raise ConfigError(f"the search space no longer fits study "
                              f"{self.study.study_name!r} ({exc}); keep its --space, or use "
                              f"--restart or another --study-name") from None
        try:
            for path, value in drawn.items():
                set_path(settings, path, value)
            trial.set_user_attr("train_config", settings)
            trial.set_user_attr("run_dir", str(run))
            train_cfg = from_dict(TrainConfig, settings)
            summary = train(self.dataset_dir, run, train_cfg, overwrite=True,
                            on_epoch=lambda epoch, row: self._epoch(trial, epoch, row, epochs))
            values = self._values(run, train_cfg, summary, trial)
        except optuna.TrialPruned as exc:
            trial.set_user_attr("epochs", epochs[0])
            self._tell(trial, TrialState.PRUNED, note=str(exc))
        except (LeakhunterError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and not _out_of_memory(exc):
                self._fail_and_raise(trial, exc)  # a bug: no trial left running
            # the study goes on: a setting that fails is an answer about that setting
            trial.set_user_attr("epochs", epochs[0])
            self._tell(trial, TrialState.FAIL, note=str(exc).splitlines()[0])
        except KeyboardInterrupt as exc:
            # recorded as failed and queued again, so the next run trains these settings
            # (trials.csv: "interrupted (SIGINT); retried as trial M", like a dead trial's)
            trial.set_user_attr("epochs", epochs[0])
            trial.set_user_attr("failure", f"interrupted ({exc})" if str(exc)
                                else "interrupted")
            self.study.tell(trial, state=TrialState.FAIL)
            self.study.enqueue_trial(trial.params, user_attrs=heartbeat.retry_attrs(
                trial, trial.user_attrs.get("deaths", 0)))
            shutil.rmtree(run, ignore_errors=True)
            log.warning("trial %d interrupted: recorded as failed, its settings queued for "
                        "the next run", trial.number)
            raise
        except BaseException as exc:
            self._fail_and_raise(trial, exc)  # no trial is left "running"
        else:
            trial.set_user_attr("epochs", summary["epochs"])
            self._tell(trial, TrialState.COMPLETE, values=values)

    def _fail_and_raise(self, trial: optuna.Trial, exc: BaseException) -> NoReturn:
        """Record ``trial`` as failed by ``exc`` (a note in trials.csv), then re-raise it."""
        try:
            trial.set_user_attr("failure", f"{type(exc).__name__}: {exc}".splitlines()[0])
            self.study.tell(trial, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            pass  # failed by another process meanwhile (declared dead): the run loop says so
        raise exc

    def _epoch(self, trial: optuna.Trial, epoch: int, row: dict[str, Any],
               epochs: list[int]) -> None:
        """train's ``on_epoch``: stop on a non-finite loss; report F1 and maybe prune."""
        epochs[0] = epoch
        if not math.isfinite(row["train_loss"]):
            raise TrialFailed(f"training loss is {row['train_loss']} at epoch {epoch}")
        if not self.multi:  # Optuna reports intermediate values of one objective only
            trial.report(row[REPORTED], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} (validation file F1 "
                                         f"{row['val_file_f1']:.4f})")

    def _values(self, run: Path, train_cfg: TrainConfig, summary: dict[str, Any],
                trial: optuna.Trial) -> list[float]:
        cost = inference_cost(run / "best.pt")
        trial.set_user_attr("parameters", cost["parameters"])
        trial.set_user_attr("latency_us", cost["latency_us"])
        if self.cfg.target_specificity is None:
            accuracy = summary["best"]["file_f1"]
        else:
            accuracy = self._sensitivity(run, train_cfg, trial)
        return [accuracy] + [cost[name] for name in self.objective[1:]]

    def _sensitivity(self, run: Path, train_cfg: TrainConfig, trial: optuna.Trial) -> float:
        """Per-recording sensitivity on VALIDATION at the most sensitive threshold whose
        specificity reaches the target (the rule ``evaluate --target-specificity`` uses)."""
        from ..model.card import load_model
        from ..model.metrics import binary_scores, choose_threshold, recording_scores
        from ..model.scoring import predict_segments

        model, card = load_model(run / "best.pt", "cpu")
        data = self.validation
        prob, _ = predict_segments(model, data, torch.device("cpu"))
        positive = card.positive_indices
        truth = np.isin(data.file_label, positive)
        scores = recording_scores(data.file_index, prob, data.recordings, "vote",
                                  train_cfg.vote_fraction)
        threshold, _ = choose_threshold(truth, scores, self.cfg.target_specificity)
        result = binary_scores(truth, scores >= threshold)
        trial.set_user_attr("val_specificity", result["specificity"])
        trial.set_user_attr("threshold", threshold)
        return result["sensitivity"]

    def _tell(self, trial: optuna.Trial, state: TrialState, values: list[float] | None = None,
              note: str = "") -> None:
        if note:
            trial.set_user_attr("failure" if state == TrialState.FAIL else "pruned", note)
        self.study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)
        log.info("%s", outputs.progress_line(self.study, trial.number, self.objective,
                                             time.perf_counter() - self.started))

    def keep_set(self) -> set[int]:
        """Trials whose run directories stay: the best (every Pareto-optimal one in a
        multi-objective study), or every trial with ``keep_trials``."""
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if self.cfg.keep_trials:
            return {t.number for t in self.study.get_trials(deepcopy=False)}
        if not done:
            return set()
        return {t.number for t in self.study.best_trials} if self.multi else \
            {self.study.best_trial.number}

    def _remove_finished_runs(self) -> None:
        """Remove the run directories of finished trials that are not kept. Trials still
        running (in other processes sharing this folder) are never touched."""
        keep = self.keep_set()
        finished = {t.number for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))}
        for path in sorted((self.study_dir / "trials").glob("trial-*")):
            number = int(path.name.split("-")[1])
            if number in finished and number not in keep:
                shutil.rmtree(path, ignore_errors=True)

