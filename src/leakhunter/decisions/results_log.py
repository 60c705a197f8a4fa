"""An appendable predictions file: `predict --resume` and `--watch` add rows to it.

Daily operation judges the recordings an archive gained since the last run. The output CSV
(same columns as ``predict`` writes) is opened for appending; each recording's row is
written as one complete line and flushed, so an interrupted run (Ctrl-C, SIGTERM, SIGKILL,
a crash) leaves only whole rows, plus at most one torn last line, which the next run cuts
off before it appends. A recording is done when its row is in the file; the next run judges
only the others. A recording judged again (``predict --watch``: it changed after it was
judged) gets its new row appended, then :meth:`ResultsLog.compact` rewrites the file
(whole, through a temporary file) keeping each recording's last row; a run stopped between
the two leaves both rows, and the next open keeps the last.

The file's sidecar (``results.info.json``,
:func:`leakhunter.decisions.predictions_file.predictions_info`) records what made the rows;
its ``identity`` (the model file's SHA-256, the ONNX file's when one scored, the decision
rule, the classes and the columns) must match for rows to be added. A run whose model or
rule differs is refused rather than mixed into the same file.

Memory: the done set keeps an 8-byte digest per recording (about 100 bytes each in a Python
set): 100 MB per million recordings, whatever the length of their paths.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runtime import locks, safe_write
from ..runtime.safe_write import write_json
from .predictions_file import info_path

log = logging.getLogger(__name__)

FSYNC_EVERY = 64  # rows between fsyncs: a power cut loses at most this many finished rows


def _digest(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"),
                                          digest_size=8).digest(), "little")


class ResultsLog:
    """Rows already in ``path`` and an append handle for new ones.

    ``info``: the sidecar a new file gets
    (:func:`leakhunter.decisions.predictions_file.predictions_info`); its ``identity``
    (model hash, rule, classes, ``columns``) must match an existing file's.
    Raises :class:`InputError` when ``path`` exists and was written with another identity,
    has no sidecar, or does not start with the expected header.
    """

    def __init__(self, path: str | Path, info: dict[str, Any]):
        self.path = Path(path)
        self.info = info
        self.identity = info["identity"]
        self.columns = list(self.identity["columns"])
        self._done: set[int] = set()
        self.existing = 0  # rows found when opened
        self.appended = 0
        self.dropped = 0  # older rows of re-judged recordings, removed by compact()
        self._again = 0  # rows appended for recordings already in the file
        # one writer: a second `predict --resume/--watch` on this folder is refused
        self._held = ExitStack()
        self._held.enter_context(locks.folder_lock(
            self.path.parent, f"predict (appending to {self.path.name})"))
        try:
            self._open()
        except BaseException:
            self._held.close()
            raise

    def _open(self) -> None:
        if self.path.exists():
            self._check_identity()
            self._repair_and_read()
        else:
            self._create()
        self._open_for_append()
        if self._again:  # a run stopped between a re-judgement and its compaction
            self.existing -= self.compact()
            self.dropped = 0

    def _open_for_append(self) -> None:
        self._fh = self.path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=self.columns,
                                      extrasaction="ignore")

    # --- opening ----------------------------------------------------------------------------

    def _check_identity(self) -> None:
        side = info_path(self.path)
        try:
            info = json.loads(side.read_text(encoding="utf-8"))
            found = info["identity"]
        except FileNotFoundError:
            raise InputError(f"{self.path}: no {side.name} beside it says which model and "
                             f"rule wrote its rows; cannot add to it safely (write to another "
                             f"--out)") from None
        except KeyError:  # written by a predict without --resume, or an older leakhunter
            raise InputError(f"{side}: records no model identity (written by an older "
                             f"leakhunter); cannot add to {self.path} safely: write to another "
                             f"--out") from None
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"{side}: unreadable ({exc}); cannot add to {self.path} "
                             f"safely") from None
        changed = [k for k in sorted(set(found) | set(self.identity))
                   if found.get(k) != self.identity.get(k)]
        if changed:
            what = ", ".join(f"{k} {_short(found.get(k))} -> {_short(self.identity.get(k))}"
                             for k in changed)
            raise InputError(f"{self.path} was written with another model or decision rule "
                             f"({what}); its rows would not be comparable: write to another "
                             f"--out")

    def _repair_and_read(self) -> None:
        """Cut a torn last line (a run killed mid-row), then collect the done paths."""
        with self.path.open("rb+") as fh:
            end = fh.seek(0, os.SEEK_END)
            if end:
                fh.seek(end - 1)
                if fh.read(1) != b"\n":
                    keep = _last_newline(fh, end)
                    fh.truncate(keep)
                    log.warning("%s: removed an unfinished last row (%d bytes) left by an "
                                "interrupted run; that recording is judged again",
                                self.path, end - keep)
                    end = keep
            if end == 0:  # not even the header survived: write it again
                fh.seek(0)
                fh.write(_header(self.columns).encode("utf-8"))
        with self.path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != self.columns:
                raise InputError(f"{self.path}: its columns differ from what this predict "
                                 f"writes; write to another --out")
            for row in reader:
                if row:
                    digest = _digest(row[0])
                    self._again += digest in self._done
                    self._done.add(digest)
                    self.existing += 1

    def _create(self) -> None:
        write_json(info_path(self.path), self.info)
        safe_write.write_text(self.path, _header(self.columns), "writing the results header")

    # --- use --------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        """Rows in the file now (one per recording once compacted)."""
        return self.existing + self.appended - self.dropped

    def done(self, path: str | Path) -> bool:
        return _digest(str(path)) in self._done

    def append(self, row: dict[str, Any]) -> None:
        """Write one recording's row as one line, flushed (an fsync every
        :data:`FSYNC_EVERY` rows and on close). A recording already in the file gets a
        second row until :meth:`compact`."""
        digest = _digest(str(row["path"]))
        self._again += digest in self._done
        self._writer.writerow(row)
        self._fh.flush()
        self._done.add(digest)
        self.appended += 1
        if self.appended % FSYNC_EVERY == 0:
            os.fsync(self._fh.fileno())

    def compact(self) -> int:
        """Rewrite the file with each recording's last row only, in the order of those
        rows, when some recording has two; returns how many rows were dropped. Written
        through a temporary file: a failure or a kill leaves the file as it was."""
        if not self._again:
            return 0
        self._fh.flush()
        self._fh.close()
        try:
            with self.path.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                next(reader)
                rows = [row for row in reader if row]
            last = {row[0]: i for i, row in enumerate(rows)}
            kept = [row for i, row in enumerate(rows) if last[row[0]] == i]
            with safe_write.writing(self.path, "rewriting the results") as fh:
                writer = csv.writer(fh)
                writer.writerow(self.columns)
                writer.writerows(kept)
        finally:
            self._open_for_append()
        dropped = len(rows) - len(kept)
        self.dropped += dropped
        self._again = 0
        return dropped

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            finally:
                self._fh.close()
                self._held.close()

    def __enter__(self) -> ResultsLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _header(columns: list[str]) -> str:
    text = io.StringIO()
    csv.writer(text).writerow(columns)
    return text.getvalue()


def _last_newline(fh: Any, size: int, block: int = 65536) -> int:
    """Offset just past the last b"\\n" before ``size`` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - block)
        fh.seek(start)
        chunk = fh.read(end - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 20 else text[:16] + "..."
