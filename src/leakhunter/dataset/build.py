"""`leakhunter build`: recordings -> TRAINING / VALIDATION / TESTING HDF5 datasets.

1. **extract** (parallel worker processes; :mod:`.extract`): each recording is decoded
   once, checked (unreadable, empty, NaN, silence, shorter than ``--min-duration``), hashed,
   resampled, cleaned, zero-padded to one segment when shorter than one (as ``predict``
   does; marked in ``files/padded``), and turned into log-mel segments -- in the workers on
   CPU, or batched in the main process on CUDA. The features stream, in input order, into a
   spool file beside the output. Recordings whose name gives a gain at or below the minimum
   (sensor out of water) are excluded undecoded.
2. **split**: grouped and stratified (see :mod:`.splits`); needs every recording's sensor
   and content hash, hence after the extraction.
3. **write**: the spool is read back sequentially and each recording's segments are
   appended to its split's file. Copying float16 arrays costs far less than decoding twice.

Only metadata is kept in memory across the build (about a kilobyte per recording); features
go to disk as they come. Files are written as ``*.partial`` and renamed when all are
complete, with ``build_report.json`` written last: a folder without it holds no finished
dataset.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..config import SPLITS, BuildConfig, to_dict
from ..errors import InputError
from ..recordings.features import segment_starts
from ..runtime import devices, signals
from ..runtime.locks import writes_folder
from ..runtime.log import progress_bar
from ..runtime.parallel import Workers, default_workers
from ..runtime.safe_write import guard, require_space, write_text
from . import mel_range
from .extract import Scanned, extract
from .sources import Discovery, discover
from .splits import SplitItem, assign_splits, check_every_label
from .store import PARTIAL_SUFFIX, SPLIT_FILES, FileRecord, SplitWriter, replace_into_place

log = logging.getLogger(__name__)

REPORT_FILE = "build_report.json"
OUTPUT_FILES = (*SPLIT_FILES.values(), "labels.json", "config.json", REPORT_FILE)
SPOOL_FILE = "features.spool" + PARTIAL_SUFFIX  # float16 [segments, n_mels, frames], raw


@writes_folder("out_dir", "build")
def build_dataset(input_path: str | Path, out_dir: str | Path,
                  config: BuildConfig = BuildConfig(), overwrite: bool = False,
                  one_label: bool = False, fit_fmax: bool = True) -> dict[str, Any]:
    """Build the three split files from ``input_path`` into ``out_dir``.

    With ``fit_fmax`` a ``None`` ``fmax`` becomes the recordings' lowest Nyquist frequency
    (:mod:`.mel_range`); ``learn`` turns it off, as it must compute its model's bands.

    Returns the build report (also written to ``out_dir/build_report.json``). Raises
    :class:`InputError` for unusable input (nothing found, a label missing from a split,
    ``--strict`` with skipped files, an existing dataset without ``overwrite``).
    """
    started = time.perf_counter()
    out = Path(out_dir)
    choice = devices.resolve(config.device, "build")
    device = choice.device
    found = discover(input_path, one_label)
    _prepare_out_dir(out, overwrite)
    log.info("found %d recordings under %s (%s; labels: %s)", len(found.sources), input_path,
             found.layout, ", ".join(found.labels))
    if fit_fmax:
        config = dataclasses.replace(config, feature=mel_range.fitted(
            config.feature, [s.path for s in found.sources]))
    log.info("features on %s", choice.describe())
    spool = out / SPOOL_FILE
    try:
        t0 = time.perf_counter()
        with Workers(config.workers or default_workers()) as pool, guard(
                spool, "writing the features spool", lambda: _size(spool), approx="more than "):
            scanned = extract(found.sources, config, pool, device, spool)
            workers = pool.workers
        extract_s = time.perf_counter() - t0
        usable, skipped, excluded = _sort_out(scanned, found, config)

        t0 = time.perf_counter()
        splits, duplicates, dropped = _split(usable, config)
        skipped += dropped
        kept = [i for i, split in enumerate(splits) if split is not None]
        tool_split = any(s.source.split is None for s in usable)
        check_every_label([splits[i] for i in kept], [usable[i].source.label for i in kept],
                          found.labels, config.split.group_by if tool_split else None)
        split_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        needed = _split_bytes(usable, splits, config)
        require_space(out, needed, "writing the split files")
        with guard(out, "writing the split files", needed, approx="about "):
            stats = _write_splits(usable, splits, found.labels, out, config, spool)
        write_s = time.perf_counter() - t0
    finally:
        spool.unlink(missing_ok=True)

    report = _report(found, stats, skipped, excluded, duplicates, config, workers, device,
                     {"extract_s": extract_s, "split_s": split_s, "write_s": write_s,
                      "total_s": time.perf_counter() - started})
    # --allow-truncated: what was kept of files that hold less than their header declares
    report["truncated"] = [{"path": s.source.path, "reason": s.truncated}
                           for s, split in zip(usable, splits) if s.truncated and split]
    _write_json(out / "labels.json", {"labels": found.labels})
    _write_json(out / "config.json", {"input": str(input_path), "build": to_dict(config),
                                      "leakhunter_version": __version__})
    _write_json(out / REPORT_FILE, report)  # last: its presence marks a finished dataset
    return report


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise InputError(f"{out}: already holds a dataset ({existing[0]}); use --overwrite "
                         f"to replace it or choose another --out")
    for stale in out.glob(f"*{PARTIAL_SUFFIX}"):  # left by an interrupted build
        stale.unlink()


def _sort_out(scanned: list[Scanned], found: Discovery, config: BuildConfig
              ) -> tuple[list[Scanned], list[dict[str, str]], list[dict[str, str]]]:
    """Usable recordings, skipped ones and out-of-water ones; applies ``--strict``."""
    usable = [s for s in scanned if not s.problem]
    skipped = [{"path": s.source.path, "reason": s.problem}
               for s in scanned if s.problem and not s.out_of_water]
    excluded = [{"path": s.source.path, "reason": s.problem}
                for s in scanned if s.out_of_water]
    for item in skipped:
        log.warning("skipped %s: %s", item["path"], item["reason"])
    if excluded:
        log.info("excluded %d recording(s) at gain <= %g dB (sensor out of water)",
                 len(excluded), config.audio.min_gain_db)
    if config.strict and skipped:
        raise InputError(f"{len(skipped)} recording(s) could not be used and --strict is set "
                         f"(first: {skipped[0]['path']}: {skipped[0]['reason']})")
    if not usable:
        raise InputError(f"{found.input}: no usable recordings ({len(skipped)} skipped, "
                         f"{len(excluded)} excluded)")
    return usable, skipped, excluded


# --- split ----------------------------------------------------------------------------------

def _split(usable: list[Scanned], config: BuildConfig
           ) -> tuple[list[str | None], list[dict[str, Any]], list[dict[str, str]]]:
    """Split per recording (``None``: dropped), duplicate sets, and the dropped copies."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(usable):
        by_hash[s.content_hash].append(i)
    dup_sets = [idx for idx in by_hash.values() if len(idx) > 1]

    given = [s.source.split for s in usable]
    dropped: list[dict[str, str]] = []
    if all(g is not None for g in given):
        splits: list[str | None] = list(given)
        # The input fixed the splits: a copy in a later split than its first occurrence
        # would leak training audio into evaluation, so it is dropped.
        for idx in dup_sets:
            first = min(idx, key=lambda i: (SPLITS.index(given[i]), i))
            for i in idx:
                if given[i] != given[first]:
                    splits[i] = None
                    dropped.append({"path": usable[i].source.path,
                                    "reason": f"duplicate of {usable[first].source.path} "
                                              f"(in {given[first]})"})
    else:
        items = [SplitItem(s.source.label, _group_key(s, config.split.group_by),
                           s.content_hash) for s in usable]
        splits = list(assign_splits(items, config.split))
    duplicates = [{"content_hash": usable[idx[0]].content_hash,
                   "paths": [usable[i].source.path for i in idx],
                   "labels": sorted({usable[i].source.label for i in idx}),
                   "splits": sorted({s for i in idx if (s := splits[i])})} for idx in dup_sets]
    for dup in duplicates:
        log.warning("identical audio in %d files (kept in %s): %s", len(dup["paths"]),
                    "/".join(dup["splits"]), ", ".join(dup["paths"]))
        if len(dup["labels"]) > 1:
            log.warning("  ... with conflicting labels %s", ", ".join(dup["labels"]))
    return splits, duplicates, dropped


def _group_key(s: Scanned, group_by: str) -> str:
    """The split group: manifest group, else sensor id, else the recording itself."""
    if group_by == "sensor":
        if s.source.group:
            return "group:" + s.source.group
        if s.meta.sensor_id:
            return "sensor:" + s.meta.sensor_id
    return "path:" + s.source.path


def _sensor(s: Scanned) -> str:
    return s.source.group or s.meta.sensor_id


# --- write ----------------------------------------------------------------------------------

def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _split_bytes(usable: list[Scanned], splits: list[str | None],
                 config: BuildConfig) -> int:
    """Generous estimate of the three files' size: features padded to whole chunks, plus
    256 kB per file for the files table and HDF5's own metadata (measured: under 100 kB)."""
    segment = config.feature.n_mels * config.feature.frames_per_segment * 2  # float16
    per_split = Counter({split: 0 for split in SPLITS})
    for s, split in zip(usable, splits):
        if split is not None:
            per_split[split] += s.segments
    chunk = config.chunk_segments
    return sum(-(-n // chunk) * chunk * (segment + 10) + 2**18 for n in per_split.values())


def _write_splits(usable: list[Scanned], splits: list[str | None], labels: list[str],
                  out: Path, config: BuildConfig, spool: Path) -> dict[str, dict[str, Any]]:
    """Copy each kept recording's segments from the spool into its split's file."""
    feature = config.feature
    shape = (feature.n_mels, feature.frames_per_segment)
    total = sum(s.segments for s in usable)
    spooled = np.memmap(spool, dtype=np.float16, mode="r", shape=(total, *shape))
    index = {lab: i for i, lab in enumerate(labels)}
    stats: dict[str, dict[str, Any]] = {
        split: {"classes": Counter(), "segments_per_class": Counter(), "sensors": set(),
                "audio_s": 0.0, "padded": 0} for split in SPLITS}
    writers: dict[str, SplitWriter] = {}
    temps: list[Path] = []
    try:  # until the rename, any exception (Ctrl-C, SIGTERM included) removes every file
        for split in SPLITS:
            writers[split] = SplitWriter(out / SPLIT_FILES[split], split, feature, labels,
                                         to_dict(config), config.chunk_segments)
        offset = 0
        with progress_bar(total=len(usable), desc="write", unit="rec") as bar:
            for s, split in zip(usable, splits):
                lo, offset = offset, offset + s.segments
                bar.update(1)
                if split is None:
                    continue
                record = FileRecord(
                    path=s.source.path, label=index[s.source.label], sensor_id=_sensor(s),
                    recording_id=s.meta.recording_id, timestamp=s.meta.timestamp,
                    gain_db=np.nan if s.meta.gain_db is None else s.meta.gain_db,
                    duration_s=s.duration_s, sample_rate=s.sample_rate,
                    content_hash=s.content_hash, padded=s.padded)
                writers[split].append(record, spooled[lo:offset],
                                      segment_starts(s.segments, feature))
                st = stats[split]
                st["classes"][s.source.label] += 1
                st["segments_per_class"][s.source.label] += s.segments
                st["audio_s"] += s.duration_s
                st["padded"] += int(s.padded)
                if _sensor(s):
                    st["sensors"].add(_sensor(s))
        for split in SPLITS:
            temps.append(writers[split].finish())
        signals.check()  # last chance: after the renames the dataset is finished
        (out / REPORT_FILE).unlink(missing_ok=True)  # an old dataset is unfinished from here
        replace_into_place(temps)
    except BaseException:
        for w in writers.values():
            w.abort()
        for split in SPLITS:  # also a file whose writer was interrupted while opening it
            (out / (SPLIT_FILES[split] + PARTIAL_SUFFIX)).unlink(missing_ok=True)
        raise
    finally:
        del spooled  # close the memory map before the spool is deleted
    for split in SPLITS:
        stats[split]["recordings"] = writers[split].recordings
        stats[split]["segments"] = writers[split].segments
    return stats


# --- report ---------------------------------------------------------------------------------

def _report(found: Discovery, stats: dict[str, dict[str, Any]], skipped: list[dict[str, str]],
            excluded: list[dict[str, str]], duplicates: list[dict[str, Any]],
            config: BuildConfig, workers: int, device: torch.device,
            timings: dict[str, float]) -> dict[str, Any]:
    labels = found.labels
    splits = {}
    sensor_splits: dict[str, list[str]] = defaultdict(list)
    for split in SPLITS:
        st = stats[split]
        for sensor in st["sensors"]:
            sensor_splits[sensor].append(split)
        splits[split] = {
            "file": SPLIT_FILES[split], "recordings": st["recordings"],
            "segments": st["segments"], "audio_s": round(st["audio_s"], 3),
            "recordings_per_class": {lab: st["classes"][lab] for lab in labels},
            "segments_per_class": {lab: st["segments_per_class"][lab] for lab in labels},
            "sensors": sorted(st["sensors"]),
            "padded": st["padded"],  # recordings shorter than one segment, zero-padded
        }
    shared = {s: sp for s, sp in sorted(sensor_splits.items()) if len(sp) > 1}
    if shared:
        log.warning("%d sensor(s) appear in more than one split (as the input fixed it): %s",
                    len(shared), ", ".join(list(shared)[:5]))
    padded = sum(sp["padded"] for sp in splits.values())
    if padded:
        log.info("%d recording(s) shorter than one segment (%g s) were zero-padded to one "
                 "(files/padded)", padded, config.feature.segment_s)
    audio_s = sum(sp["audio_s"] for sp in splits.values())
    return {
        "input": found.input, "layout": found.layout, "labels": labels, "splits": splits,
        # who chose each recording's split: the input (split folders, a manifest's split
        # column) or build's grouped split
        "splits_from": "input" if all(s.split is not None for s in found.sources)
        else "build",
        "skipped": skipped, "excluded_out_of_water": excluded, "duplicates": duplicates,
        "sensors_in_several_splits": shared, "padded": padded,
        "min_duration_s": config.audio.min_duration_s,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "audio_s": round(audio_s, 3),
        "speed_x_realtime": round(audio_s / max(timings["total_s"], 1e-9), 1),
        "workers": workers, "device": str(device), "leakhunter_version": __version__,
    }


def _write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n", f"writing {path.name}",
               temp=path.with_name(path.name + PARTIAL_SUFFIX))
