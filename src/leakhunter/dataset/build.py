"""`leakhunter build`: recordings -> TRAINING / VALIDATION / TESTING HDF5 datasets.

Two passes over the recordings, each in parallel worker processes:

1. **scan**: decode each recording once to check it (unreadable, empty, NaN, silence, too
   short), hash its audio content and measure it. Recordings whose name gives a gain at or
   below the minimum (sensor out of water) are excluded without decoding. Then split.
2. **extract**: decode again, resample, clean, compute log-mel features (in the workers on
   CPU, or batched in the main process on CUDA) and append them to the split's file.

Only metadata is kept in memory across the build (about a kilobyte per recording); features
stream to disk. Files are written as ``*.partial`` and renamed when all are complete, with
``build_report.json`` written last: a folder without it holds no finished dataset.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..audio import NameMeta, gain_too_low, load_recording, parse_name
from ..config import SPLITS, AudioConfig, BuildConfig, FeatureConfig, to_dict
from ..errors import AudioError, InputError
from ..features import LogMel, extract, segment_starts
from ..log import progress_bar
from .. import signals
from ..parallel import Workers, default_workers
from .sources import Discovery, Source, discover
from .splits import SplitItem, assign_splits, check_every_label
from .store import PARTIAL_SUFFIX, SPLIT_FILES, FileRecord, SplitWriter, replace_into_place

log = logging.getLogger(__name__)

REPORT_FILE = "build_report.json"
OUTPUT_FILES = (*SPLIT_FILES.values(), "labels.json", "config.json", REPORT_FILE)


@dataclass(frozen=True)
class Scanned:
    """Pass-1 facts about one recording; ``problem`` is the reason it is not used."""

    source: Source
    meta: NameMeta
    content_hash: str = ""
    duration_s: float = 0.0
    sample_rate: int = 0
    segments: int = 0
    problem: str = ""
    out_of_water: bool = False


def build_dataset(input_path: str | Path, out_dir: str | Path,
                  config: BuildConfig = BuildConfig(), overwrite: bool = False) -> dict[str, Any]:
    """Build the three split files from ``input_path`` into ``out_dir``.

    Returns the build report (also written to ``out_dir/build_report.json``). Raises
    :class:`InputError` for unusable input (nothing found, a label missing from a split,
    ``--strict`` with skipped files, an existing dataset without ``overwrite``).
    """
    started = time.perf_counter()
    out = Path(out_dir)
    device = _device(config.device)
    workers = config.workers or default_workers()
    found = discover(input_path)
    _prepare_out_dir(out, overwrite)
    log.info("found %d recordings under %s (%s; labels: %s)", len(found.sources), input_path,
             found.layout, ", ".join(found.labels))

    with Workers(workers) as pool:  # one pool for both passes
        return _build(found, out, config, pool, device, started)


def _build(found: Discovery, out: Path, config: BuildConfig, pool: Workers,
           device: torch.device, started: float) -> dict[str, Any]:
    input_path = found.input
    t0 = time.perf_counter()
    scanned = _scan(found.sources, config, pool)
    scan_s = time.perf_counter() - t0
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
        raise InputError(f"{input_path}: no usable recordings ({len(skipped)} skipped, "
                         f"{len(excluded)} excluded)")

    t0 = time.perf_counter()
    splits, duplicates, dup_skipped = _split(usable, found.layout, config)
    skipped += dup_skipped
    keep = [i for i, s in enumerate(splits) if s is not None]
    usable = [usable[i] for i in keep]
    splits = [splits[i] for i in keep]
    tool_split = any(s.source.split is None for s in usable)
    check_every_label(splits, [s.source.label for s in usable], found.labels,
                      config.split.group_by if tool_split else None)
    split_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    written, late_skips = _extract_and_write(usable, splits, found.labels, out, config,
                                             pool, device)
    skipped += late_skips
    extract_s = time.perf_counter() - t0
    if config.strict and late_skips:
        raise InputError(f"{late_skips[0]['path']}: {late_skips[0]['reason']} (--strict)")

    report = _report(input_path, found.layout, found.labels, written, skipped, excluded,
                     duplicates, config, pool.workers, device,
                     {"scan_s": scan_s, "split_s": split_s, "extract_s": extract_s,
                      "total_s": time.perf_counter() - started})
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


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


# --- pass 1: scan ---------------------------------------------------------------------------

def _scan_chunk(sources: list[Source], feature: FeatureConfig,
                audio: AudioConfig) -> list[Scanned]:
    out = []
    for src in sources:
        meta = parse_name(src.path)
        if gain_too_low(meta, audio):
            out.append(Scanned(src, meta, problem=f"gain {meta.gain_db:g} dB <= "
                               f"{audio.min_gain_db:g} dB (sensor out of water)",
                               out_of_water=True))
            continue
        try:
            rec = load_recording(src.path, feature, audio)
        except AudioError as exc:
            out.append(Scanned(src, meta, problem=exc.reason))
            continue
        out.append(Scanned(src, meta, rec.content_hash, rec.duration_s,
                           rec.original_sample_rate, feature.n_segments(len(rec.waveform))))
    return out


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _scan(sources: list[Source], config: BuildConfig, pool: Workers) -> list[Scanned]:
    tasks = [(chunk, config.feature, config.audio)
             for chunk in _chunks(sources, config.files_per_task)]
    scanned: list[Scanned] = []
    with progress_bar(total=len(sources), desc="scan", unit="rec") as bar:
        for result in pool.map(_scan_chunk, tasks):
            signals.check()
            scanned.extend(result)
            bar.update(len(result))
    return scanned


# --- splitting ------------------------------------------------------------------------------

def _split(usable: list[Scanned], layout: str, config: BuildConfig
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


# --- pass 2: extract and write --------------------------------------------------------------

_FRONT_ENDS: dict[FeatureConfig, LogMel] = {}  # one per worker process and config


def _front_end(feature: FeatureConfig) -> LogMel:
    if feature not in _FRONT_ENDS:
        _FRONT_ENDS[feature] = LogMel(feature)
    return _FRONT_ENDS[feature]


def _extract_chunk(items: list[tuple[str, str]], feature: FeatureConfig, audio: AudioConfig,
                   features_here: bool) -> list[tuple[np.ndarray | None, str]]:
    """Per item ``(path, expected hash)``: ``(payload, problem)``. The payload is float16
    log-mel ``[S, n_mels, frames]`` when ``features_here``, else the float32 waveform."""
    waves: list[np.ndarray | None] = []
    problems = []
    for path, expected in items:
        try:
            rec = load_recording(path, feature, audio)
            problem = "" if rec.content_hash == expected else "file changed during the build"
        except AudioError as exc:
            rec, problem = None, exc.reason
        waves.append(rec.waveform if rec is not None and not problem else None)
        problems.append(problem)
    if not features_here:
        return list(zip(waves, problems))
    good = [w for w in waves if w is not None]
    mels = iter(extract(good, _front_end(feature)) if good else [])
    return [(next(mels).astype(np.float16) if w is not None else None, p)
            for w, p in zip(waves, problems)]


def _extract_and_write(usable: list[Scanned], splits: list[str], labels: list[str], out: Path,
                       config: BuildConfig, pool: Workers, device: torch.device
                       ) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    feature = config.feature
    order = sorted(range(len(usable)), key=lambda i: (SPLITS.index(splits[i]), i))
    features_here = device.type == "cpu"
    front_end = None if features_here else LogMel(feature).to(device)
    build_meta = to_dict(config)
    writers: dict[str, SplitWriter] = {}
    stats: dict[str, dict[str, Any]] = {
        split: {"classes": Counter(), "segments_per_class": Counter(), "sensors": set(),
                "audio_s": 0.0} for split in SPLITS}
    late_skips: list[dict[str, str]] = []
    index = {lab: i for i, lab in enumerate(labels)}
    temps: list[Path] = []
    try:  # until the rename, any exception (Ctrl-C, SIGTERM included) removes every file
        for split in SPLITS:
            writers[split] = SplitWriter(out / SPLIT_FILES[split], split, feature, labels,
                                         build_meta, config.chunk_segments)
        chunks = _chunks(order, config.files_per_task)
        tasks = [([(usable[i].source.path, usable[i].content_hash) for i in chunk], feature,
                  config.audio, features_here) for chunk in chunks]
        with progress_bar(total=len(order), desc="features", unit="rec") as bar:
            for chunk, results in zip(chunks, pool.map(_extract_chunk, tasks)):
                signals.check()
                if not features_here:
                    results = _features_on_device(results, front_end, device)
                for i, (mel, problem) in zip(chunk, results):
                    s, split = usable[i], splits[i]
                    if problem:
                        late_skips.append({"path": s.source.path, "reason": problem})
                        log.warning("skipped %s: %s", s.source.path, problem)
                        continue
                    record = FileRecord(
                        path=s.source.path, label=index[s.source.label], sensor_id=_sensor(s),
                        recording_id=s.meta.recording_id, timestamp=s.meta.timestamp,
                        gain_db=np.nan if s.meta.gain_db is None else s.meta.gain_db,
                        duration_s=s.duration_s, sample_rate=s.sample_rate,
                        content_hash=s.content_hash)
                    n = mel.shape[0]
                    writers[split].append(record, mel, segment_starts(n, feature))
                    st = stats[split]
                    st["classes"][s.source.label] += 1
                    st["segments_per_class"][s.source.label] += n
                    st["audio_s"] += s.duration_s
                    if _sensor(s):
                        st["sensors"].add(_sensor(s))
                bar.update(len(chunk))
        if late_skips:  # a file changed or vanished since the scan: re-check coverage
            kept = {s.source.path for s in usable} - {x["path"] for x in late_skips}
            check_every_label([splits[i] for i in order if usable[i].source.path in kept],
                              [usable[i].source.label for i in order
                               if usable[i].source.path in kept], labels)
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
    for split in SPLITS:
        stats[split]["recordings"] = writers[split].recordings
        stats[split]["segments"] = writers[split].segments
    return stats, late_skips


def _features_on_device(results: list[tuple[np.ndarray | None, str]], front_end: LogMel,
                        device: torch.device) -> list[tuple[np.ndarray | None, str]]:
    good = [w for w, _ in results if w is not None]
    mels = iter(extract(good, front_end, device) if good else [])
    return [(next(mels).astype(np.float16) if w is not None else None, p) for w, p in results]


# --- report ---------------------------------------------------------------------------------

def _report(input_path: str | Path, layout: str, labels: list[str],
            stats: dict[str, dict[str, Any]], skipped: list[dict[str, str]],
            excluded: list[dict[str, str]], duplicates: list[dict[str, Any]],
            config: BuildConfig, workers: int, device: torch.device,
            timings: dict[str, float]) -> dict[str, Any]:
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
        }
    shared = {s: sp for s, sp in sorted(sensor_splits.items()) if len(sp) > 1}
    if shared:
        log.warning("%d sensor(s) appear in more than one split (as the input fixed it): %s",
                    len(shared), ", ".join(list(shared)[:5]))
    audio_s = sum(sp["audio_s"] for sp in splits.values())
    return {
        "input": str(input_path), "layout": layout, "labels": labels, "splits": splits,
        "skipped": skipped, "excluded_out_of_water": excluded, "duplicates": duplicates,
        "sensors_in_several_splits": shared,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "audio_s": round(audio_s, 3),
        "speed_x_realtime": round(audio_s / max(timings["total_s"], 1e-9), 1),
        "workers": workers, "device": str(device), "leakhunter_version": __version__,
    }


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
