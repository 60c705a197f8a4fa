"""The HDF5 split files: schema, an incremental writer, and a checked reader.

Schema (version 1), one file per split (``TRAINING_DATASET.H5`` ...):

=====================  ======================================  ==========================
dataset                dtype, shape                            meaning
=====================  ======================================  ==========================
``mel``                float16 [segments, n_mels, frames]      log-mel of each long segment (dB)
``label``              int16 [segments]                        class index (see ``labels``)
``file_index``         int32 [segments]                        row in ``files/``
``start_s``            float32 [segments]                      segment start in its recording (s)
``files/path``         str [recordings]                        path as given to build
``files/label``        int16 [recordings]                      class index
``files/sensor_id``    str [recordings]                        from the name or manifest group
``files/recording_id`` str, ``files/timestamp`` str            from the name ("" when unknown)
``files/gain_db``      float32 [recordings]                    from the name (NaN when unknown)
``files/duration_s``   float32 [recordings]                    original duration
``files/sample_rate``  int32 [recordings]                      original sample rate (Hz)
``files/first_segment`` int64, ``files/segment_count`` int32   the recording's rows in ``mel``
``files/content_hash`` str [recordings]                        SHA-256 of the decoded audio
``files/padded``       int8 [recordings]                       1: shorter than one segment,
                                                               zero-padded to one
=====================  ======================================  ==========================

``files/padded`` is absent from files written before it existed: read as all 0.

File attributes: ``schema_version``, ``split``, ``feature_config`` (JSON), ``labels`` (JSON
list), ``build_config`` (JSON), ``created`` (ISO 8601 UTC), ``leakhunter_version``,
``segments``, ``recordings``, and ``complete`` (set last, only when the file is finished).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..config import SPLITS, FeatureConfig, from_dict, to_dict
from ..errors import DatasetError

SCHEMA_VERSION = 1
SPLIT_FILES = {split: f"{split}_DATASET.H5" for split in SPLITS}
PARTIAL_SUFFIX = ".partial"

_STR = h5py.string_dtype("utf-8")
FILE_COLUMNS: dict[str, Any] = {
    "path": _STR, "label": np.int16, "sensor_id": _STR, "recording_id": _STR,
    "timestamp": _STR, "gain_db": np.float32, "duration_s": np.float32,
    "sample_rate": np.int32, "first_segment": np.int64, "segment_count": np.int32,
    "content_hash": _STR, "padded": np.int8,
}
OPTIONAL_COLUMNS = {"padded"}  # older files lack them; read as zeros


@dataclass(frozen=True)
class FileRecord:
    """One recording's row in ``files/`` (``first_segment``/``segment_count`` are added by
    the writer)."""

    path: str
    label: int
    sensor_id: str
    recording_id: str
    timestamp: str
    gain_db: float  # NaN when unknown
    duration_s: float
    sample_rate: int
    content_hash: str
    padded: bool = False  # shorter than one segment, zero-padded to one


class SplitWriter:
    """Appends recordings to one split file, written under ``<name>.partial``.

    :meth:`finish` marks the file complete and returns the temporary path; the caller renames
    it (all splits together, once every split is finished). :meth:`abort` deletes it.
    """

    def __init__(self, path: str | Path, split: str, feature: FeatureConfig,
                 labels: list[str], build_config: dict[str, Any], chunk_segments: int = 512,
                 rows_per_write: int = 1024):
        self.final_path = Path(path)
        self.temp_path = self.final_path.with_name(self.final_path.name + PARTIAL_SUFFIX)
        shape = (feature.n_mels, feature.frames_per_segment)
        self._h5 = h5py.File(self.temp_path, "w")
        h5 = self._h5
        h5.create_dataset("mel", shape=(0, *shape), maxshape=(None, *shape),
                          dtype=np.float16, chunks=(chunk_segments, *shape),
                          fletcher32=True)  # a checksum per chunk: corruption is detected
        for name, dtype in (("label", np.int16), ("file_index", np.int32),
                            ("start_s", np.float32)):
            h5.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                              chunks=(max(chunk_segments, 1024),))
        files = h5.create_group("files")
        for name, dtype in FILE_COLUMNS.items():
            files.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                                 chunks=(rows_per_write,))
        h5.attrs.update({
            "schema_version": SCHEMA_VERSION, "split": split,
            "feature_config": json.dumps(to_dict(feature)), "labels": json.dumps(labels),
            "build_config": json.dumps(build_config),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "leakhunter_version": __version__, "complete": False,
        })
        self.segments = 0  # written or buffered
        self.recordings = 0
        self._segments_per_write = 8 * chunk_segments  # ~2 MB of float16 features
        self._rows_per_write = rows_per_write
        self._rows: list[dict[str, Any]] = []  # buffered files/ rows
        self._mel: list[np.ndarray] = []  # buffered per-segment arrays, one per recording
        self._label: list[np.ndarray] = []
        self._index: list[np.ndarray] = []
        self._start: list[np.ndarray] = []
        self._pending = 0  # buffered segments

    def append(self, record: FileRecord, mel: np.ndarray, start_s: np.ndarray) -> None:
        """Add one recording: ``mel`` float16 ``[S, n_mels, frames]``, ``start_s`` ``[S]``.

        Recordings are buffered and written a chunk at a time: one HDF5 call per array per
        chunk instead of several per recording (h5py calls cost ~50 us each).
        """
        n = mel.shape[0]
        self._rows.append(dict(record.__dict__, first_segment=self.segments, segment_count=n))
        self._mel.append(mel)
        self._label.append(np.full(n, record.label, np.int16))
        self._index.append(np.full(n, self.recordings, np.int32))
        self._start.append(start_s)
        self._pending += n
        self.segments += n
        self.recordings += 1
        if self._pending >= self._segments_per_write:
            self._write_segments()
        if len(self._rows) >= self._rows_per_write:
            self._write_rows()

    def _write_segments(self) -> None:
        """Write the buffered per-segment arrays."""
        if not self._pending:
            return
        h5 = self._h5
        hi = self.segments
        lo = hi - self._pending
        arrays = {"mel": np.concatenate(self._mel), "label": np.concatenate(self._label),
                  "file_index": np.concatenate(self._index),
                  "start_s": np.concatenate(self._start)}
        for name, values in arrays.items():
            h5[name].resize(hi, axis=0)
            h5[name][lo:hi] = values
        self._mel, self._label, self._index, self._start, self._pending = [], [], [], [], 0

    def _write_rows(self) -> None:
        """Write the buffered ``files/`` rows."""
        if not self._rows:
            return
        files = self._h5["files"]
        lo = files["path"].shape[0]
        for name in FILE_COLUMNS:
            files[name].resize(lo + len(self._rows), axis=0)
            files[name][lo:] = [row[name] for row in self._rows]
        self._rows = []

    def finish(self) -> Path:
        """Flush, mark complete, close; returns the temporary path to rename."""
        self._write_segments()
        self._write_rows()
        self._h5.attrs.update({"segments": self.segments, "recordings": self.recordings})
        self._h5.attrs["complete"] = True  # last write: a file without it is unfinished
        self._h5.close()
        return self.temp_path

    def abort(self) -> None:
        """Close and delete the temporary file.

        After a write failed for want of space, HDF5 still holds unwritten metadata and
        tries again on close (and when its objects are freed, even at interpreter exit,
        where a failure has crashed the process). Emptying the file first gives that last
        flush the space it needs; the file is deleted all the same.
        """
        try:
            os.truncate(self.temp_path, 0)
        except OSError:
            pass
        try:
            self._h5.close()
        except Exception:  # the error that brought us here is the one to report
            pass
        finally:
            self.temp_path.unlink(missing_ok=True)


@dataclass
class SplitInfo:
    """What :func:`read_split_info` learns of one split file."""

    path: Path
    split: str
    schema_version: int
    feature: FeatureConfig
    labels: list[str]
    segments: int
    recordings: int
    created: str
    version: str
    files: dict[str, np.ndarray]  # the files/ columns, strings decoded


def open_split(path: str | Path) -> h5py.File:
    """Open a split file read-only after checking it is a finished leakhunter dataset.

    Raises :class:`DatasetError` naming the file when it is missing, not HDF5, corrupted,
    unfinished, or of an unknown schema version.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: dataset file missing")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        attrs = h5.attrs
        if "schema_version" not in attrs:
            raise DatasetError(f"{path}: not a leakhunter dataset (no schema_version)")
        if int(attrs["schema_version"]) != SCHEMA_VERSION:
            raise DatasetError(f"{path}: schema version {attrs['schema_version']} is not "
                               f"supported (this leakhunter reads {SCHEMA_VERSION})")
        if not bool(attrs.get("complete", False)):
            raise DatasetError(f"{path}: unfinished dataset file (interrupted build?)")
        missing = [n for n in ("mel", "label", "file_index", "start_s", "files") if n not in h5]
        missing += [f"files/{n}" for n in FILE_COLUMNS if "files" in h5
                    and n not in h5["files"] and n not in OPTIONAL_COLUMNS]
        if missing:
            raise DatasetError(f"{path}: missing {', '.join(missing)}")
    except DatasetError:
        h5.close()
        raise
    except Exception as exc:  # h5py raises several types on damaged metadata
        h5.close()
        raise DatasetError(f"{path}: corrupted dataset file ({exc})") from None
    return h5


def read_split_info(path: str | Path) -> SplitInfo:
    """Attributes and the ``files/`` table of a split file (not the features)."""
    path = Path(path)
    with open_split(path) as h5:
        try:
            attrs = h5.attrs
            files = {}
            for name in FILE_COLUMNS:
                if name not in h5["files"]:  # an optional column of an older file
                    files[name] = np.zeros(h5["files"]["path"].shape[0], FILE_COLUMNS[name])
                    continue
                col = h5["files"][name]
                files[name] = col.asstr()[()] if col.dtype.kind == "O" else col[()]
            return SplitInfo(
                path=path, split=str(attrs["split"]),
                schema_version=int(attrs["schema_version"]),
                feature=from_dict(FeatureConfig, json.loads(attrs["feature_config"])),
                labels=list(json.loads(attrs["labels"])),
                segments=int(h5["mel"].shape[0]), recordings=int(files["path"].shape[0]),
                created=str(attrs["created"]), version=str(attrs["leakhunter_version"]),
                files=files)
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: corrupted dataset file ({exc})") from None


def replace_into_place(temp_paths: list[Path]) -> None:
    """Flush finished ``.partial`` files to the disk, then rename them to their final
    names (a power cut after the rename must not leave a named file without its data)."""
    from ..runtime import safe_write

    for temp in temp_paths:  # every file whole on the disk before any takes its name
        safe_write.fsync_file(temp)
    for temp in temp_paths:
        final = temp.with_name(temp.name[: -len(PARTIAL_SUFFIX)])
        safe_write.replace(temp, final, f"renaming {final.name} into place")
