"""`leakhunter tune`: an Optuna study whose trials are `leakhunter train` runs.

Each trial draws settings from the search space (:mod:`.space`), trains through
:func:`leakhunter.training.train.train` itself into ``STUDY_DIR/trials/trial-NNNN``, and
reports each epoch's validation file F1 through train's ``on_epoch`` hook, where the pruner
may end it. The study lives in a database (``STUDY_DIR/study.db`` by default, any
SQLAlchemy URL with ``--storage``): processes on several machines given the same URL and
study name share one study, and re-running the command continues it. Trials are asked and
told one at a time, so whatever ends a trial (completion, pruning, a failure, Ctrl-C) is
recorded before the next starts; a trial whose process was killed outright is failed and
retried once when its heartbeat stops (:mod:`.heartbeat`), so none is left "running".

This module sets the study up (storage, identity, ``--restart``, sampler, pruner, the lock
around creating it) and writes its outputs; :mod:`.trials` runs its trials.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

from ..config import MAX_SEED, TrainConfig, TuneConfig, from_dict, to_dict
from ..dataset.segments import SplitData, load_split
from ..dataset.store import SPLIT_FILES
from ..errors import InputError
from . import heartbeat, outputs
from .space import baseline_params, load_space
from .trials import Runner, outputs_lock

log = logging.getLogger(__name__)

COSTS = {"latency": "latency_us", "params": "parameters"}


def run_study(dataset_dir: str | Path, study_dir: str | Path, cfg: TuneConfig,
              train_settings: dict[str, Any], fixed: set[str],
              space_file: str | Path | None = None, restart: bool = False) -> dict[str, Any]:
    """Run ``cfg.trials`` trials (fewer when ``cfg.timeout_s`` runs out) of the study in
    ``study_dir``, then write its outputs; returns the summary (also ``summary.json``).

    ``train_settings``: the train settings tree every trial starts from; ``fixed``: the
    dotted setting paths given explicitly, which are not searched. Raises
    :class:`InputError` (dataset, storage, a study of another dataset) or
    :class:`ConfigError` (settings, ``--space``) before any trial runs.
    """
    dataset_dir, study_dir = Path(dataset_dir), Path(study_dir)
    train_settings = copy.deepcopy(train_settings)
    if cfg.target_specificity is not None:  # each trial's best.pt decides by the same rule
        train_settings["target_specificity"] = cfg.target_specificity
    base_cfg = from_dict(TrainConfig, train_settings)
    validation = load_split(dataset_dir / SPLIT_FILES["VALIDATION"], preload="no")
    identity = _identity(dataset_dir, validation, base_cfg, cfg)
    multiclass = len(validation.labels) > 2
    space = tuple(p for p in load_space(space_file, fixed) if multiclass or not p.multiclass)
    study_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    url = cfg.storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    with _creation_lock(url):  # one process at a time creates the database and the study
        storage = open_storage(url)
        if restart:
            _restart(storage, cfg.study_name, study_dir)
        study, created = _open_study(storage, cfg, identity, base_cfg.epochs)
        # only the process that created the study queues its baseline: several processes
        # starting one study on a database server at once (no lock file there) queue it
        # once, and a study continued or resumed after a kill never gets a second one
        if cfg.baseline and created:
            study.enqueue_trial(baseline_params(space, _automatic(base_cfg, dataset_dir),
                                                multiclass), user_attrs={"baseline": True})
    runner = Runner(study, storage, dataset_dir, study_dir, cfg, train_settings, space,
                    multiclass, validation)
    log.info("study %r in %s: %d trial(s) so far; %d parameter(s) searched (%s); "
             "objective %s; pruner %s", cfg.study_name, _shown(storage.url),
             sum(t.state.is_finished() for t in study.trials),
             len(space), ", ".join(p.name for p in space), ", ".join(identity["objective"]),
             type(study.pruner).__name__)
    runner.run()
    with outputs_lock(study_dir):
        return outputs.write_all(study, study_dir, identity["objective"], runner.keep_set())


def _automatic(base: TrainConfig, dataset_dir: Path) -> dict[str, Any]:
    """The settings tree of ``base`` with its automatic batch size and learning rate made
    concrete as a plain `train` on this machine would (the baseline trial's values)."""
    from ..dataset.store import read_split_info
    from ..runtime.devices import resolve
    from ..training.batches import resolve_auto

    segments = read_split_info(dataset_dir / SPLIT_FILES["TRAINING"]).segments
    return to_dict(resolve_auto(base, resolve(base.device, "train").device, segments))


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage at ``url`` with trial heartbeats switched on
    (:func:`.heartbeat.storage_options`); SQLite waits up to a minute for a lock held by
    another process instead of failing at once. Raises :class:`InputError` when the
    database cannot be reached or its driver is missing.

    Two processes creating the same new database at once race on its schema tables (one
    gets "UNIQUE constraint failed: alembic_version"): :func:`run_study` creates a SQLite
    file under a lock file beside it, and any database is tried again once the other
    process has made them.
    """
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    retries = 2
    while True:
        try:
            with heartbeat.quiet():
                return optuna.storages.RDBStorage(url, engine_kwargs=kwargs,
                                                  **heartbeat.storage_options())
        except Exception as exc:  # SQLAlchemy, driver and argument errors alike
            if retries and "alembic_version" in str(exc):
                retries -= 1
                time.sleep(1.0)
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                type(exc).__name__
            raise InputError(f"--storage {_shown(url)}: cannot open the study database "
                             f"({reason})") from None


def _creation_lock(url: str) -> Any:
    """A lock file beside a SQLite database, or nothing for a database server (processes
    on other machines cannot share a lock file; :func:`open_storage` retries there)."""
    path = _sqlite_path(url)
    return FileLock(f"{path}.lock") if path else nullcontext()


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL whose folder exists (for its lock file), else None."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL: RDBStorage reports it
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database \
            or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return path if path.parent.is_dir() else None


def _shown(url: str) -> str:
    """``url`` without a password, for logs and errors."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show it as given
        return url


def _identity(dataset_dir: Path, validation: SplitData, base: TrainConfig,
              cfg: TuneConfig) -> dict[str, Any]:
    """What a study is about; a study made for another dataset or objective is refused."""
    missing = [p for p in base.positive if p not in validation.labels]
    if missing:
        raise InputError(f"--positive {','.join(missing)}: no such class in {dataset_dir} "
                         f"(classes: {', '.join(validation.labels)})")
    accuracy = ("val_file_f1" if cfg.target_specificity is None else
                f"val_sensitivity_at_specificity_{cfg.target_specificity:g}")
    costs = [COSTS[c] for c in cfg.objective.split(",")[1:]]
    return {"classes": list(validation.labels), "positive": list(base.positive),
            "feature_config": to_dict(validation.feature), "objective": [accuracy, *costs]}


def _restart(storage: optuna.storages.RDBStorage, name: str, study_dir: Path) -> None:
    names = optuna.get_all_study_names(storage)
    files = [p for p in outputs.STUDY_FILES if (study_dir / p).exists()]
    if name in names:
        n = len(optuna.load_study(study_name=name, storage=storage).trials)
        log.warning("--restart: deleting study %r (%d trial(s)) from %s", name, n,
                    _shown(storage.url))
        optuna.delete_study(study_name=name, storage=storage)
    if files:
        log.warning("--restart: deleting %s from %s", ", ".join(files), study_dir)
        for item in files:
            path = study_dir / item
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _open_study(storage: optuna.storages.RDBStorage, cfg: TuneConfig,
                identity: dict[str, Any], epochs: int) -> tuple[optuna.Study, bool]:
    """The study (created, or loaded when it exists) and whether this call created it.
    Raises :class:`InputError` for a study made for another dataset or objective."""
    directions = ["maximize"] + ["minimize"] * (len(identity["objective"]) - 1)
    sampler = _SeededPerTrial(cfg, multi=len(directions) > 1)
    try:  # the database decides atomically which of several processes creates the study
        storage.create_new_study([StudyDirection[d.upper()] for d in directions],
                                 cfg.study_name)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    study = optuna.create_study(storage=storage, study_name=cfg.study_name,
                                directions=directions, sampler=sampler,
                                pruner=_pruner(cfg, len(directions) > 1, epochs),
                                load_if_exists=True)
    saved = study.user_attrs.get("leakhunter")
    if saved is None:
        study.set_user_attr("leakhunter", identity)
        return study, created
    for key, what in (("classes", "classes"), ("positive", "leak classes (--positive)"),
                      ("feature_config", "feature config"), ("objective", "objective")):
        if saved[key] != identity[key]:
            shown = (", ".join(map(str, saved[key])), ", ".join(map(str, identity[key])))
            if key == "feature_config":
                shown = ("another", "this dataset's")
            raise InputError(f"study {cfg.study_name!r} in {_shown(storage.url)} was made "
                             f"for {what} {shown[0]}, not {shown[1]}; use --restart to start "
                             f"it over, or another --study-name")
    return study, created


def _pruner(cfg: TuneConfig, multi: bool, epochs: int) -> optuna.pruners.BasePruner:
    """Pruning compares validation F1 per epoch (``epochs``: a trial's most); Optuna prunes
    single-objective studies only."""
    if multi or cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    # steps are epoch numbers from 1; Optuna never prunes at a step below n_warmup_steps
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials,
                                       n_warmup_steps=cfg.pruner_warmup_epochs + 1)


class _SeededPerTrial(BaseSampler):
    """The configured sampler, re-created before each trial with a seed made of the study
    seed and the trial's number. Trial numbers are unique in a study, so a re-run or a
    second process never replays the random draws of an earlier trial, and trial *n* of a
    study run in one process draws the same way every time."""

    def __init__(self, cfg: TuneConfig, multi: bool):
        self.cfg, self.multi = cfg, multi
        self.base = self._make(cfg.seed)

    def _make(self, seed: int) -> BaseSampler:
        if self.cfg.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.cfg.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.cfg.startup_trials)

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        self.base = self._make((self.cfg.seed * 1_000_003 + trial.number) % (MAX_SEED + 1))
        self.base.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: Any,
                        search_space: dict[str, Any]) -> dict[str, Any]:
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: Any, param_name: str,
                           param_distribution: Any) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: Any, state: TrialState,
                    values: Any) -> None:
        self.base.after_trial(study, trial, state, values)
