"""The datasets of a learn run: the new site's recordings, and each round's training set.

* ``RUN_DIR/data/``: NEW_INPUT built by ``build`` (same discovery, extraction and
  split-by-sensor) with the parent model's own feature and audio settings. Unlabelled
  recordings are built from a manifest that gives them all the label ``UNLABELLED``: the
  features and the split are what matter; their classes come from the model, per round.
* ``RUN_DIR/round-K/data/``: ``TRAINING`` = the selected new segments with their target
  classes, plus the replayed share of the old training data; ``VALIDATION`` = the new
  site's validation recordings (true classes, or confident pseudo-labels) and, with
  ``--replay``, the old site's VALIDATION: the round's threshold serves both. Written as
  ``.partial`` files, renamed together, then ``selection.json`` last: a round folder without
  it holds no finished data.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config import BuildConfig, SplitConfig
from ..dataset.build import REPORT_FILE, build_dataset
from ..dataset.segments import SplitData
from ..dataset.sources import discover
from ..dataset.store import (
    SPLIT_FILES,
    FileRecord,
    SplitWriter,
    open_split,
    read_split_info,
    replace_into_place,
)
from ..errors import InputError
from ..model.card import ModelCard
from ..recordings.files import find_recordings
from ..runtime import safe_write

UNLABELLED = "UNLABELLED"
SELECTION_FILE = "selection.json"


def build_new_site(new_input: str | Path, out: Path, build_cfg: BuildConfig,
                   classes: list[str], unlabelled: bool) -> dict[str, Any]:
    """Build NEW_INPUT into ``out`` (skipped when a finished build is there already).

    Raises :class:`InputError` when NEW_INPUT's classes differ from the model's, or when
    it holds no usable recording (from ``build``).
    """
    if (out / REPORT_FILE).exists():
        return json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    source: str | Path = new_input
    if unlabelled:
        out.mkdir(parents=True, exist_ok=True)
        source = out.parent / "unlabelled.csv"
        with safe_write.writing(source, "writing the list of unlabelled recordings") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label"])
            for path in find_recordings([new_input]):
                writer.writerow([str(Path(path).resolve()), UNLABELLED])
    else:
        found = discover(new_input)
        if found.labels != classes:
            raise InputError(f"{new_input}: classes {', '.join(found.labels)} differ from the "
                             f"model's ({', '.join(classes)}); learn adapts a model to new "
                             f"recordings of the same classes")
    return build_dataset(source, out, build_cfg, overwrite=True, one_label=unlabelled,
                         fit_fmax=False)  # the model's own bands, whatever they are


def gather(data: SplitData, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float16 log-mel ``[n, M, F]`` and ``start_s`` ``[n]`` of sorted ``segments``."""
    with open_split(data.path) as h5:
        if segments.size == 0:
            return np.zeros((0, *h5["mel"].shape[1:]), np.float16), np.zeros(0, np.float32)
        return h5["mel"][segments], h5["start_s"][segments]


def write_round_data(out: Path, classes: list[str], feature: Any, audio: dict[str, Any],
                     parts: dict[str, list[tuple[SplitData, np.ndarray, np.ndarray]]],
                     selection: dict[str, Any]) -> None:
    """Write ``out/{TRAINING,VALIDATION}_DATASET.H5`` and then ``selection.json``.

    ``parts[split]``: ``(source split, sorted segment indices, their classes)`` triples,
    copied recording by recording with the source's ``files/`` rows (paths, sensors,
    hashes), so every segment of a round can be traced to its recording.
    """
    out.mkdir(parents=True, exist_ok=True)
    build_config = {"audio": audio, "learn": selection.get("settings", {})}
    temps = []
    for split, sources in parts.items():
        writer = SplitWriter(out / SPLIT_FILES[split], split, feature, classes, build_config)
        try:
            for data, segments, labels in sources:
                _copy(writer, data, segments, labels)
            if writer.segments == 0:
                raise InputError(f"round data {split}: no segment selected (see "
                                 f"{out / SELECTION_FILE} counts)")
            temps.append(writer.finish())
        except BaseException:
            writer.abort()
            for temp in temps:
                temp.unlink(missing_ok=True)
            raise
    replace_into_place(temps)
    safe_write.write_json(out / SELECTION_FILE, selection)


def _copy(writer: SplitWriter, data: SplitData, segments: np.ndarray,
          labels: np.ndarray) -> None:
    """Append ``segments`` of ``data`` grouped by recording, labelled ``labels``."""
    if segments.size == 0:
        return
    files = read_split_info(data.path).files
    mel, start = gather(data, segments)
    rec = data.file_index[segments]
    bounds = np.flatnonzero(np.diff(rec)) + 1
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [rec.size]])):
        r = int(rec[lo])
        writer.append(FileRecord(
            path=str(files["path"][r]), label=int(labels[lo]),
            sensor_id=str(files["sensor_id"][r]), recording_id=str(files["recording_id"][r]),
            timestamp=str(files["timestamp"][r]), gain_db=float(files["gain_db"][r]),
            duration_s=float(files["duration_s"][r]), sample_rate=int(files["sample_rate"][r]),
            content_hash=str(files["content_hash"][r]), padded=bool(files["padded"][r])),
            mel[lo:hi], start[lo:hi])


def replay_sample(old: SplitData, new_segments: int, share: float, seed: int,
                  round_no: int) -> np.ndarray:
    """Sorted indices of old training segments making ``share`` of the round's training
    set beside ``new_segments`` new ones (all of them when there are fewer); seeded by
    ``(seed, round)`` so a resumed run draws the same."""
    if share <= 0.0:
        return np.zeros(0, np.int64)
    want = int(round(new_segments * share / (1.0 - share)))
    rng = np.random.default_rng([seed, round_no, 11])
    return np.sort(rng.choice(old.segments, size=min(want, old.segments), replace=False))


def build_config_for(card: ModelCard, split: SplitConfig, workers: int, device: str
                     ) -> BuildConfig:
    """``build`` settings that read recordings exactly as the model's own dataset was."""
    return BuildConfig(feature=card.feature, audio=card.audio, split=split, workers=workers,
                       device=device)
