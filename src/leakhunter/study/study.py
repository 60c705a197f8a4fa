"""``leakhunter study``: every grid cell x model x fold, cached, resumable, summarised.

:func:`run_study` finds the recordings (as ``build`` does), fits the mel range once, lays
out the grid (:mod:`.grid`; invalid cells listed with their reasons) and the folds
(:mod:`.folds`: grouped by sensor, stratified by label), then runs what ``runs.csv`` does
not hold yet, cell by cell so that each cell's features are built once (:mod:`.cache`)
and serve all its folds and models. Each finished run is one row of ``runs.csv`` at once;
a stopped study (Ctrl-C, SIGKILL) continues where it stopped when run again, and a run it
was in the middle of is done again (a CNN run resumes from its last checkpoint). At the
end, and after every cell, the outputs (:mod:`.outputs`) are written from ``runs.csv``.

``study.json`` records what the runs depend on (the recordings, the folds' settings, the
build and training settings); a rerun with other such settings is refused, while the grid
and the models may grow between runs (a study is extended, not restarted).

With ``--storage`` the runs are the waiting trials of one Optuna study that several
machines share (:mod:`.shared`); ``--jobs N`` is that on one machine, N processes sharing
one folder and a SQLite database in it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import PAPER_CHOICE, STUDY_MODELS, BuildConfig, StudyConfig, from_dict, to_dict
from ..dataset import mel_range
from ..dataset.sources import Source, discover
from ..errors import InputError, LeakhunterError
from ..recordings.audio import gain_too_low, parse_name
from ..runtime import devices, safe_write
from ..runtime.log import progress_bar, setup_logging
from ..runtime.parallel import default_workers
from .baselines import available
from .cache import cached_features, fold_dataset, identity
from .folds import Fold, describe, fixed_split, sensor_folds
from .grid import Cell, make_grid
from .outputs import read_runs, write_outputs
from .raw import cached_raw
from .runs import RUNS_FILE, append_run, finished, run_key, run_model, write_runs
from .shared import Shared, open_shared

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
SHARED_DB = "study.db"  # --jobs without --storage: the jobs' database
WORK = "work"  # STUDY_DIR/work/: fold datasets and run folders while a run lasts


def run_study(recordings: str | Path, study_dir: str | Path,
              cfg: StudyConfig = StudyConfig()) -> dict[str, Any]:  # noqa: B008
    """Run (or continue) the study of ``recordings`` in ``study_dir``; returns what was
    done: runs planned, done before, done now, failed, the build seconds, the outputs."""
    if cfg.jobs > 1:
        return _run_jobs(recordings, Path(study_dir), cfg)
    started = time.perf_counter()
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    found = discover(recordings)
    # absolute paths: the build manifest lives in STUDY_DIR, and the cache finds a
    # fold's recordings by the path the build stored
    sources = [dataclasses.replace(s, path=os.path.abspath(s.path)) for s in found.sources]
    # recordings build leaves out by their names (a sensor out of water) are left out of
    # the folds too, so each fold's counts are what its runs see
    dry = [s for s in sources if gain_too_low(parse_name(s.path), cfg.build.audio)]
    sources = [s for s in sources if s not in dry]
    if not sources:
        raise InputError(f"{recordings}: every recording is out of water (gain <= "
                         f"{cfg.build.audio.min_gain_db:g} dB in its name)")
    paths = [s.path for s in sources]
    labels = [s.label for s in sources]
    sensors = [s.group or parse_name(s.path).sensor_id for s in sources]
    base = dataclasses.replace(cfg.build, feature=mel_range.fitted(cfg.build.feature, paths))
    grid = make_grid(cfg.long_s, cfg.short_points, base.feature, cfg.train.model)
    if not grid.cells:
        raise InputError("no valid configuration in the grid: " + "; ".join(
            f"{long:g} s / {short}: {why}" for long, short, why in grid.invalid))
    folds = (sensor_folds(labels, sensors, cfg.folds, cfg.seed, cfg.validation_share)
             if cfg.folds > 1 else fixed_split(labels, sensors, cfg.build.split))
    recordings_id = identity(sources)
    _check_same_study(study_dir, cfg, recordings_id)
    notes = [f"{len(sources)} recordings from {len(set(sensors))} sensors ("
             + ", ".join(f"{labels.count(lab)} {lab}" for lab in found.labels) + ")"
             + (f"; {len(dry)} more left out, out of water (gain <= "
                f"{cfg.build.audio.min_gain_db:g} dB)" if dry else "")]
    models = []
    for model in cfg.models:
        why = available(model)
        if why:
            notes.append(f"{model} skipped: {why}")
        else:
            models.append(model)
    skipped = [n for n in notes if " skipped: " in n]
    if not models:
        raise InputError("no model to run: " + "; ".join(skipped))
    for line in skipped:
        log.warning("%s", line)
    notes += describe(folds, labels, sensors)
    runs_path = study_dir / RUNS_FILE
    # the raw CNN sees waveforms: its runs do not depend on the short frame, so it runs
    # at one (the paper's 512 points when in the grid)
    raw_short = PAPER_CHOICE[1] if PAPER_CHOICE[1] in cfg.short_points else cfg.short_points[0]
    if "cnn-raw" in models:
        notes.append(f"cnn-raw runs at {raw_short} points only: its input, the waveform, "
                     f"does not depend on the short frame")
    plan = [(cell, model, fold) for cell in grid.cells for fold in folds for model in models
            if model != "cnn-raw" or cell.short_points == raw_short]
    cells = {cell.key: cell for cell in grid.cells}
    job = _Job(study_dir, cfg, base, sources, recordings_id, paths, folds, cells)
    if cfg.storage:
        shared = open_shared(cfg.storage, cfg.study_name,
                             [run_key(c.key, m, f.index) for c, m, f in plan],
                             _shared_identity(cfg, sources, recordings))
        done_before = len(shared.rows())
        ran, failed = _run_shared(job, shared, len(plan) - done_before)
        write_runs(runs_path, shared.rows())
    else:
        done = finished(runs_path)
        todo = [p for p in plan if run_key(p[0].key, p[1], p[2].index) not in done]
        done_before = len(plan) - len(todo)
        ran, failed = _run_local(job, todo, lambda: _outputs(study_dir, cfg, models, base,
                                                             notes))
    log.info("study: %d runs planned, %d done before, %d run now", len(plan), done_before,
             ran)
    outputs = _outputs(study_dir, cfg, models, base, notes) if runs_path.is_file() else []
    if not cfg.storage:  # a shared folder's other jobs may still be running in it
        shutil.rmtree(study_dir / WORK, ignore_errors=True)  # what a killed run left
    return {"planned": len(plan), "done_before": done_before, "ran": ran,
            "failed": failed, "build_s": job.build_s, "total_s": time.perf_counter() - started,
            "invalid": grid.invalid, "models": models, "outputs": [str(p) for p in outputs],
            "notes": notes}


def _run_jobs(recordings: str | Path, study_dir: Path, cfg: StudyConfig) -> dict[str, Any]:
    """``cfg.jobs`` processes on one machine share the study as machines do (its database:
    ``--storage``, or ``STUDY_DIR/study.db``) and its folder (the feature cache is locked
    per cell): this one and ``jobs - 1`` started here. Each CUDA device takes every
    ``jobs``-th process; on the CPU each process gets its share of the cores. When all
    have finished, ``runs.csv`` and the outputs are written from every run."""
    study_dir.mkdir(parents=True, exist_ok=True)
    url = cfg.storage or f"sqlite:///{(study_dir / SHARED_DB).resolve()}"
    one = dataclasses.replace(cfg, jobs=1, storage=url)
    threads = max(1, default_workers() // cfg.jobs)
    quiet = logging.getLogger("leakhunter").getEffectiveLevel()
    context = multiprocessing.get_context("spawn")  # no torch or database state inherited
    others = [context.Process(target=_job, name=f"study-job-{job}",
                              args=(str(recordings), str(study_dir),
                                    to_dict(for_job(one, job, cfg.jobs)), threads, quiet))
              for job in range(1, cfg.jobs)]
    for process in others:
        process.start()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        first = run_study(recordings, study_dir, for_job(one, 0, cfg.jobs))
    finally:
        for process in others:
            process.join()
        torch.set_num_threads(before)
    result = run_study(recordings, study_dir, for_job(one, 0, cfg.jobs))  # writes it all
    result["ran"] = result["done_before"] - first["done_before"]
    result["done_before"] = first["done_before"]
    stopped = [p.name for p in others if p.exitcode]
    if stopped:
        raise LeakhunterError(f"{', '.join(stopped)} stopped with an error (above); the runs "
                              f"they held are queued again: run the same command to finish")
    return result


def for_job(cfg: StudyConfig, job: int, jobs: int) -> StudyConfig:
    """Job ``job``'s settings: on a machine with CUDA devices, ``auto`` or ``cuda`` become
    the job's device in turn."""
    if cfg.train.device in ("auto", "cuda") and devices.cuda_available():
        device = f"cuda:{job % torch.cuda.device_count()}"
        return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device))
    return cfg


def _job(recordings: str, study_dir: str, cfg: dict[str, Any], threads: int,
         level: int) -> None:
    """A started job's process: the shared study's runs until none is left."""
    setup_logging(quiet=True, debug=level <= logging.DEBUG)  # the first job reports
    torch.set_num_threads(threads)
    try:
        run_study(recordings, study_dir, from_dict(StudyConfig, cfg))
    except KeyboardInterrupt:
        sys.exit(130)


@dataclass
class _Job:
    """What every run of one call needs, and the seconds spent building features."""

    study_dir: Path
    cfg: StudyConfig
    base: BuildConfig
    sources: list[Source]
    recordings: str
    paths: list[str]
    folds: list[Fold]
    cells: dict[str, Cell]
    build_s: float = 0.0
    built: dict[Any, Path] = field(default_factory=dict)  # cell key (, model) -> shards

    def features(self, cell: Cell) -> Path:
        """The cell's features folder, built (or found in the cache) once per call."""
        if cell.key not in self.built:
            got = cached_features(self.study_dir, cell, self.base, self.sources,
                                  self.recordings)
            self.build_s += got.seconds
            self.built[cell.key] = got.folder
        return self.built[cell.key]

    def inputs(self, cell: Cell, model: str) -> Path:
        """The shards a model's fold datasets are cut from: the cell's log-mels, or for
        the raw CNN its raw segments (built from them once per call, cached)."""
        features = self.features(cell)
        if model != "cnn-raw":
            return features
        if (cell.key, model) not in self.built:
            started = time.perf_counter()
            self.built[(cell.key, model)] = cached_raw(features, self.base.audio)
            self.build_s += time.perf_counter() - started
        return self.built[(cell.key, model)]

    def run(self, cell: Cell, model: str, fold: Fold) -> dict[str, Any]:
        """One run in a fold dataset of its own, removed afterwards."""
        work = self.study_dir / WORK / cell.key / f"fold{fold.index}" / model
        try:
            fold_dir = fold_dataset(self.inputs(cell, model), fold, self.paths,
                                    work / "dataset")
            return _one_run(cell, model, fold.index, fold_dir, work, self.cfg)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _run_local(job: _Job, todo: list[tuple[Cell, str, Fold]],
               outputs: Any) -> tuple[int, int]:
    """The runs not in ``runs.csv`` yet, cell by cell; each row appended when done, the
    outputs refreshed after each cell. Returns (runs, failed)."""
    runs_path = job.study_dir / RUNS_FILE
    ran = failed = 0
    with progress_bar(total=len(todo), desc="study", unit="run") as bar:
        for key, cell in job.cells.items():
            mine = [(m, f) for c, m, f in todo if c.key == key]
            for model, fold in mine:
                row = job.run(cell, model, fold)
                append_run(runs_path, row)
                failed += row["status"] == "failed"
                ran += 1
                bar.update(1)
            if mine:
                outputs()
    return ran, failed


def _run_shared(job: _Job, shared: Shared, left: int) -> tuple[int, int]:
    """Claim and run waiting runs of the shared study until none is left; a run this
    process cannot finish (Ctrl-C) is given back at once. Returns (runs, failed)."""
    ran = failed = 0
    folds = {f.index: f for f in job.folds}
    with progress_bar(total=left, desc="study (shared)", unit="run") as bar:
        while (claimed := shared.next_run()) is not None:
            trial, (key, model, fold) = claimed
            try:
                with shared.beating(trial):
                    row = job.run(job.cells[key], model, folds[fold])
            except BaseException:
                shared.release(trial)
                raise
            shared.finish(trial, row)
            failed += row["status"] == "failed"
            ran += 1
            bar.update(1)
    return ran, failed


def _shared_identity(cfg: StudyConfig, sources: list[Source],
                     recordings: str | Path) -> dict[str, Any]:
    """What every machine of a shared study must agree on: the recordings (paths relative
    to the input, labels and sizes: mount points and copies differ between machines), the
    folds' settings and the build and training settings."""
    root = Path(recordings)
    root = root if root.is_dir() else root.parent
    files = sorted((os.path.relpath(s.path, root), s.label, os.path.getsize(s.path))
                   for s in sources)
    return {"recordings": hashlib.sha256(json.dumps(files).encode()).hexdigest(),
            **_fixed(cfg)}


def _outputs(study_dir: Path, cfg: StudyConfig, models: list[str], base: Any,
             notes: list[str]) -> list[Path]:
    """The outputs of every run ``runs.csv`` holds: a study extended by several calls
    (another grid, more models) is reported whole, its grid and models the union of all."""
    runs = read_runs(study_dir / RUNS_FILE)
    longs = sorted({float(r["long_s"]) for r in runs} | set(cfg.long_s))
    shorts = sorted({int(r["short_points"]) for r in runs} | set(cfg.short_points))
    done = [m for m in STUDY_MODELS if m in {r["model"] for r in runs} | set(models)]
    grid = make_grid(longs, shorts, base.feature, cfg.train.model)
    lines = notes[:1] + [f"{long:g} s / {short} points: invalid ({why})"
                         for long, short, why in grid.invalid] + notes[1:]
    whole = dataclasses.replace(cfg, long_s=tuple(longs), short_points=tuple(shorts),
                                models=tuple(done))
    return write_outputs(study_dir, runs, whole, base, lines)


def _one_run(cell: Any, model: str, fold: int, fold_dir: Path, work: Path,
             cfg: StudyConfig) -> dict[str, Any]:
    """One run's ``runs.csv`` row; a failure a user can act on is a row, not a stop."""
    row: dict[str, Any] = {"cell": cell.key, "long_s": cell.long_s,
                           "short_points": cell.short_points, "model": model, "fold": fold}
    started = time.perf_counter()
    try:
        with _quiet():
            result = run_model(model, fold_dir, work, cfg.train, cfg.train.seed)
    except LeakhunterError as exc:
        log.warning("%s %s fold %d failed: %s", cell.key, model, fold, exc)
        return {**row, "status": "failed", "reason": str(exc),
                "seconds": round(time.perf_counter() - started, 2)}
    return {**row, **{k: _round(v) for k, v in result.items()}, "status": "ok",
            "reason": "", "seconds": round(time.perf_counter() - started, 2)}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Each run's training and build log down to warnings, unless the user asked for
    debug output: a study is hundreds of runs, its progress bar says where it is."""
    names = ("leakhunter.training", "leakhunter.dataset", "leakhunter.study.baselines")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    if logging.getLogger("leakhunter").getEffectiveLevel() > logging.DEBUG:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def _fixed(cfg: StudyConfig) -> dict[str, Any]:
    """The settings a study's runs depend on (not where or how fast they run)."""
    return {"folds": cfg.folds, "seed": cfg.seed, "validation_share": cfg.validation_share,
            "train": to_dict(dataclasses.replace(cfg.train, device="auto", preload="auto",
                                                 loader_workers=2, log_every=50)),
            "build": to_dict(dataclasses.replace(cfg.build, workers=0, device="auto"))}


def _check_same_study(study_dir: Path, cfg: StudyConfig, recordings: str) -> None:
    """Write ``study.json`` the first time; later, refuse settings the runs depend on that
    differ from it (the grid and the models may change: the study grows)."""
    path = study_dir / STUDY_FILE
    fixed = {"recordings": recordings, **_fixed(cfg)}
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in fixed if before.get(k) != json.loads(json.dumps(fixed[k])))
        if changed:
            raise InputError(f"{study_dir} holds a study with other {', '.join(changed)}: "
                             f"its runs would not compare; give another --out, or delete "
                             f"{study_dir} to start again")
        return
    safe_write.write_json(path, fixed)
