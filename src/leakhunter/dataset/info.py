"""`leakhunter info`: what a dataset folder holds, and whether it is intact.

The integrity check reads every split file in full: each opens and is complete, every array
has the shape the feature config implies, ``files/`` and the per-segment arrays agree, no
feature value is NaN or infinite (and no chunk fails its checksum), the splits share one
feature config and label set, and no recording or sensor appears in two splits. A sensor in
two splits is a problem only when ``build`` chose the splits: when the input fixed them
(split folders, a manifest's split column) it is the input's choice, reported as a note.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SPLITS, to_dict
from ..errors import DatasetError, InputError
from .build import REPORT_FILE
from .store import SPLIT_FILES, open_split, read_split_info

READ_BLOCK = 4096  # segments read at a time when scanning features


def inspect_dataset(dataset_dir: str | Path, check: bool = True) -> dict[str, Any]:
    """Summary of a dataset folder and a list of ``problems`` (empty when intact).

    Raises :class:`InputError` when the folder does not exist. Missing, corrupted or
    inconsistent split files are reported in ``problems``, each naming the file.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    problems: list[str] = []
    if not (root / REPORT_FILE).exists():
        problems.append(f"{root / REPORT_FILE}: missing (build unfinished or interrupted?)")
    splits: dict[str, Any] = {}
    infos = {}
    for split in SPLITS:
        path = root / SPLIT_FILES[split]
        try:
            info = read_split_info(path)
            if check:
                problems += _check_arrays(path, info)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        infos[split] = info
        labels = np.asarray(info.files["label"])
        seg_counts = np.asarray(info.files["segment_count"])
        splits[split] = {
            "file": path.name, "recordings": info.recordings, "segments": info.segments,
            "recordings_per_class": {lab: int((labels == i).sum())
                                     for i, lab in enumerate(info.labels)},
            "segments_per_class": {lab: int(seg_counts[labels == i].sum())
                                   for i, lab in enumerate(info.labels)},
            "sensors": len({s for s in info.files["sensor_id"] if s}),
            "audio_s": float(np.asarray(info.files["duration_s"], np.float64).sum()),
            "padded": int(np.asarray(info.files["padded"]).sum()),
            "created": info.created, "leakhunter_version": info.version,
        }
    across, notes = _check_across_splits(infos, _splits_from_input(root))
    problems += across
    first = next(iter(infos.values()), None)
    return {
        "path": str(root),
        "labels": first.labels if first else [],
        "feature_config": to_dict(first.feature) if first else {},
        "input_shape": [first.feature.n_mels, first.feature.frames_per_segment] if first else [],
        "splits": splits,
        "checked": check,
        "problems": problems,
        "notes": notes,
    }


def _splits_from_input(root: Path) -> bool:
    """Whether the input fixed the splits (``build_report.json``'s ``splits_from``; for
    datasets built before it was recorded, a split-folders layout)."""
    try:
        report = json.loads((root / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return False
    return report.get("splits_from", "input" if report.get("layout") == "split-folders"
                      else "build") == "input"


def _check_arrays(path: Path, info: Any) -> list[str]:
    """Shapes, cross-references and finiteness of one split file."""
    problems = []
    f = info.feature
    with open_split(path) as h5:
        n = h5["mel"].shape[0]
        if h5["mel"].shape[1:] != (f.n_mels, f.frames_per_segment):
            problems.append(f"{path}: mel has shape {h5['mel'].shape}, feature config implies "
                            f"[segments, {f.n_mels}, {f.frames_per_segment}]")
        for name in ("label", "file_index", "start_s"):
            if h5[name].shape != (n,):
                problems.append(f"{path}: {name} has {h5[name].shape[0]} rows, mel has {n}")
        if problems:
            return problems
        first = np.asarray(info.files["first_segment"], np.int64)
        count = np.asarray(info.files["segment_count"], np.int64)
        expected_index = np.repeat(np.arange(len(first)), count)
        if (count.sum() != n or (len(first) and (first != np.cumsum(count) - count).any())
                or not np.array_equal(h5["file_index"][()], expected_index)):
            problems.append(f"{path}: files/ segment ranges do not match file_index")
        elif not np.array_equal(h5["label"][()], np.repeat(info.files["label"], count)):
            problems.append(f"{path}: segment labels differ from their recordings' labels")
        bad = 0
        try:
            for lo in range(0, n, READ_BLOCK):
                bad += int((~np.isfinite(h5["mel"][lo:lo + READ_BLOCK])).sum())
        except OSError as exc:
            return problems + [f"{path}: corrupted feature data ({exc})"]
        if bad:
            problems.append(f"{path}: {bad} NaN or infinite feature values")
    return problems


def _check_across_splits(infos: dict[str, Any], splits_from_input: bool
                         ) -> tuple[list[str], list[str]]:
    """Problems, and notes: a sensor in several splits is a note when the input fixed the
    splits (its owner's choice, e.g. a public set's official split), a problem otherwise
    (build keeps each sensor in one split)."""
    problems, notes = [], []
    configs = {json.dumps(to_dict(i.feature), sort_keys=True) for i in infos.values()}
    if len(configs) > 1:
        problems.append("split files were built with different feature configs")
    if len({tuple(i.labels) for i in infos.values()}) > 1:
        problems.append("split files have different label sets")
    for column, what in (("content_hash", "recording"), ("sensor_id", "sensor")):
        seen: dict[str, set[str]] = defaultdict(set)
        for split, info in infos.items():
            for value in info.files[column]:
                if value:
                    seen[value].add(split)
        shared = sorted(v for v, s in seen.items() if len(s) > 1)
        if shared:
            text = (f"{len(shared)} {what}(s) appear in more than one split "
                    f"(first: {shared[0]} in {', '.join(sorted(seen[shared[0]]))})")
            if what == "sensor" and splits_from_input:
                notes.append(text + ", as the input's own split put them")
            else:
                problems.append(text)
    return problems, notes
