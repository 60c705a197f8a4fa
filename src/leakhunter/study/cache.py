"""Features built once per configuration, and each fold's datasets cut from them.

A study trains many models on the same recordings with the same features: every fold and
every model of one grid cell sees the same log-mels. They are extracted once per cell by
``build`` itself (the one front end), into ``STUDY_DIR/features/<cell>-<key>/``, where
``key`` hashes the whole build configuration of the cell (features, audio cleaning) and
the recordings' identities (path, label, size, modification time): a changed recording or
setting is a new key, never a stale cache. The three split files of such a build are only
*shards* of one table of recordings (each label spread over all three, as ``build``
wants); :func:`fold_dataset` copies each fold's TRAINING, VALIDATION and TESTING
recordings out of them into an ordinary dataset folder that ``train`` reads.

A build that was interrupted leaves no ``build_report.json`` (``build`` writes it last) and
is built again; a finished one is reused by every later run, fold and rerun.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock

from ..config import SPLITS, BuildConfig, FeatureConfig, from_dict, to_dict
from ..dataset.build import REPORT_FILE, build_dataset
from ..dataset.sources import Source
from ..dataset.store import (
    SPLIT_FILES,
    FileRecord,
    SplitWriter,
    open_split,
    replace_into_place,
)
from ..errors import InputError
from ..runtime import safe_write
from .folds import Fold
from .grid import Cell

log = logging.getLogger(__name__)

FEATURES = "features"  # STUDY_DIR/features/<cell>-<key>/: one build per cell


def identity(sources: list[Source]) -> str:
    """SHA-256 over the recordings' paths, labels, sizes and modification times: what
    changes when a recording is added, removed, relabelled or rewritten."""
    digest = hashlib.sha256()
    for s in sorted(sources, key=lambda s: s.path):
        stat = os.stat(s.path)
        digest.update(f"{s.path}\0{s.label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_key(build: BuildConfig, recordings: str) -> str:
    """16 hex digits naming a cell's features: its feature and audio settings and the
    recordings' :func:`identity`."""
    text = json.dumps({"feature": to_dict(build.feature), "audio": to_dict(build.audio),
                       "recordings": recordings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedFeatures:
    """A cell's features: the build folder, whether this call built it, and how long that
    took (0 when reused)."""

    folder: Path
    built: bool
    seconds: float


def cached_features(study_dir: Path, cell: Cell, base: BuildConfig, sources: list[Source],
                    recordings: str) -> CachedFeatures:
    """The features of ``cell`` for ``sources``, built now unless a finished build with the
    same key is there."""
    build = replace(base, feature=cell.feature)
    folder = study_dir / FEATURES / f"{cell.key}-{cache_key(build, recordings)}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    # several jobs of one study share the cache: one builds a cell, the others wait for it
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if (folder / REPORT_FILE).is_file():
            return CachedFeatures(folder, False, 0.0)
        return _build(folder, cell, build, sources)


def _build(folder: Path, cell: Cell, build: BuildConfig,
           sources: list[Source]) -> CachedFeatures:
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder.parent / f"{folder.name}.manifest.csv"
    _write_manifest(manifest, sources)
    # build's own log speaks of splits; here they are only shards, so it is kept to
    # errors and one line says what the build kept
    quiet = logging.getLogger("leakhunter.dataset")
    level = quiet.level
    if logging.getLogger("leakhunter").getEffectiveLevel() > logging.DEBUG:
        quiet.setLevel(logging.ERROR)
    try:
        report = build_dataset(manifest, folder, build, overwrite=True, fit_fmax=False)
    finally:
        quiet.setLevel(level)
        manifest.unlink(missing_ok=True)
    kept = sum(split["recordings"] for split in report["splits"].values())
    left = len(report["skipped"]) + len(report["excluded_out_of_water"])
    log.info("features for %s: %d recordings%s", cell.key, kept,
             f" ({left} left out: see {folder / REPORT_FILE})" if left else "")
    return CachedFeatures(folder, True, time.perf_counter() - started)


def _write_manifest(path: Path, sources: list[Source]) -> None:
    """``path,label,split,group``: every label spread over the three shards in turn."""
    seen: dict[str, int] = {}
    with safe_write.writing(path, "writing the study's build manifest") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split", "group"])
        for s in sources:
            n = seen.get(s.label, 0)
            seen[s.label] = n + 1
            writer.writerow([s.path, s.label, SPLITS[n % len(SPLITS)], s.group or ""])


def fold_dataset(features: Path, fold: Fold, paths: list[str], out_dir: Path) -> Path:
    """Write ``out_dir`` as a dataset of ``fold``'s recordings (indices into ``paths``)
    copied from the shards in ``features``. Recordings the build skipped (unreadable,
    out of water) are left out, and a part left empty raises :class:`InputError`."""
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a fold interrupted while being written
    out_dir.mkdir(parents=True)
    shards = [open_split(features / SPLIT_FILES[s]) for s in SPLITS]
    try:
        where = {}  # path -> (shard, row in files/)
        for k, h5 in enumerate(shards):
            for row, path in enumerate(h5["files/path"].asstr()[()]):
                where[path] = (k, row)
        attrs = dict(shards[0].attrs)
        feature = json.loads(attrs["feature_config"])
        labels = json.loads(attrs["labels"])
        feature_cfg = from_dict(FeatureConfig, feature)
        build_config = json.loads(attrs["build_config"])
        temps: list[Path] = []
        try:  # any failure, Ctrl-C included, leaves no split file behind
            for split, part in zip(SPLITS, fold.parts()):
                writer = SplitWriter(out_dir / SPLIT_FILES[split], split, feature_cfg,
                                     labels, build_config)
                try:
                    for i in part:
                        if paths[i] in where:
                            shard, row = where[paths[i]]
                            _copy(shards[shard], row, writer)
                    if writer.recordings == 0:
                        raise InputError(f"fold {fold.index}: no {split} recordings left "
                                         f"after the build skipped some (see "
                                         f"{features / REPORT_FILE})")
                    temps.append(writer.finish())
                except BaseException:
                    writer.abort()
                    raise
        except BaseException:
            for temp in temps:
                temp.unlink(missing_ok=True)
            raise
        replace_into_place(temps)
    finally:
        for h5 in shards:
            h5.close()
    safe_write.write_json(out_dir / "labels.json", {"labels": labels})
    return out_dir


def _copy(h5: h5py.File, row: int, writer: SplitWriter) -> None:
    """Append recording ``row`` of a shard to ``writer``: its files/ entry and segments."""
    files = h5["files"]
    first, count = int(files["first_segment"][row]), int(files["segment_count"][row])
    text = {name: files[name].asstr()[row] for name in ("path", "sensor_id", "recording_id",
                                                        "timestamp", "content_hash")}
    padded = bool(files["padded"][row]) if "padded" in files else False
    record = FileRecord(label=int(files["label"][row]), gain_db=float(files["gain_db"][row]),
                        duration_s=float(files["duration_s"][row]),
                        sample_rate=int(files["sample_rate"][row]), padded=padded, **text)
    writer.append(record, np.asarray(h5["mel"][first:first + count]),
                  np.asarray(h5["start_s"][first:first + count]))
