"""Daily operations: judge only what is new (`predict --resume`), and watch upload folders
(`predict --watch`).

Both append to a :class:`~leakhunter.decisions.results_log.ResultsLog`: the recordings
whose rows are already in the results file are skipped; each new row is written whole as soon as its
recording is judged.

Watching uses ``watchdog``: inotify (or the platform's own events) by default, or polling
every ``poll_s`` seconds where events do not arrive, as on network shares (SMB/NFS mounts).
Events only nominate candidates: a recording is judged once its size and modification time
have stayed the same for ``settle_s`` seconds (a logger still uploading keeps changing
them), or at once after it was renamed into place, and only once it is whole: a file whose
header declares more sound than it holds (:mod:`leakhunter.recordings.container`; a slow
link may pause for longer than ``settle_s``) is held while it grows, and for up to
``max_wait_s`` after its last change; then it is judged as it is (status ``truncated``),
and the log says so. A recording that changes after it was judged (grown, rewritten) is
judged again, and the results file keeps its newer row only. Only recordings count, by the rule
``build`` and ``predict`` apply (:func:`leakhunter.recordings.files.is_recording`: hidden
files and files in hidden folders are not); files whose name marks them unfinished
(``.part``, ``.tmp``, ``.partial``, ``.crdownload``, ``~``) are ignored until renamed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..recordings.container import inspect
from ..recordings.files import find_recordings, is_recording
from ..runtime import signals
from .predict import Predictor
from .predictions_file import csv_row
from .results_log import ResultsLog

log = logging.getLogger(__name__)

UNFINISHED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", "~")


def judge_new(predictor: Predictor, paths: Iterable[Path], results: ResultsLog,
              columns: list[str], on_record: Callable[[dict[str, Any]], None] | None = None,
              again: Iterable[Path] = ()) -> int:
    """Judge the recordings among ``paths`` that ``results`` lacks, and those in ``again``
    (changed since they were judged: their rows are replaced), appending the rows in input
    order; returns how many were judged."""
    again = set(again)
    todo = [p for p in paths if p in again or not results.done(p)]
    if not todo:
        return 0
    for record in predictor.predict(todo):
        results.append(csv_row(record, columns))
        if on_record:
            on_record(record)
    results.compact()  # one row per recording: a re-judged one keeps its newer row
    return len(todo)


def is_candidate(path: Path, root: Path | None = None) -> bool:
    """A recording under the watched folder ``root`` (:func:`is_recording`) whose name
    does not mark it as still being written."""
    return is_recording(path, root) and not path.name.endswith(UNFINISHED_SUFFIXES)


def check_timing(settle_s: float, poll_s: float | None, max_wait_s: float) -> None:
    """Refuse watch timings that mean nothing (:class:`ConfigError`, naming the flag)."""
    if not settle_s >= 0:
        raise ConfigError("--settle must be non-negative")
    if poll_s is not None and not poll_s > 0:
        raise ConfigError("--poll must be positive (leave it out for file-system events)")
    if not max_wait_s >= 0:
        raise ConfigError("--max-wait must be non-negative")


class FolderWatcher:
    """Recordings that appear under ``folders`` (recursively), released by :meth:`ready`
    once complete. Use as a context manager (starts and stops the observer thread)."""

    def __init__(self, folders: Iterable[str | Path], settle_s: float = 2.0,
                 poll_s: float | None = None, max_wait_s: float = 600.0):
        check_timing(settle_s, poll_s, max_wait_s)
        self.folders = [Path(f) for f in folders]
        for folder in self.folders:
            if not folder.is_dir():
                raise InputError(f"{folder}: --watch needs folders (no such folder)")
        self.settle_s, self.poll_s, self.max_wait_s = settle_s, poll_s, max_wait_s
        self._lock = threading.Lock()
        # path -> (size, mtime_ns, monotonic time of the last change, renamed into place)
        self._pending: dict[Path, tuple[int, int, float, bool]] = {}
        self._observer: Any = None

    def __enter__(self) -> FolderWatcher:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_created(self, event: Any) -> None:
                if not event.is_directory:
                    watcher.nominate(Path(os.fsdecode(event.src_path)))

            on_modified = on_created

            def on_moved(self, event: Any) -> None:
                if not event.is_directory:
                    watcher.nominate(Path(os.fsdecode(event.dest_path)), renamed=True)

        self._observer = (PollingObserver(timeout=self.poll_s) if self.poll_s
                          else Observer())
        for folder in self.folders:
            self._observer.schedule(Handler(), str(folder), recursive=True)
        self._observer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)

    def nominate(self, path: Path, renamed: bool = False) -> None:
        """A file that may be new or still growing (an event, or the start-up scan)."""
        roots = [f for f in self.folders if path.is_relative_to(f)] or [None]
        if not is_candidate(path, roots[0]):
            return
        try:
            st = path.stat()
            seen = (st.st_size, st.st_mtime_ns)
        except OSError:  # already gone, or not readable yet: ready() looks again
            seen = (-1, -1)
        with self._lock:
            renamed = renamed or self._pending.get(path, (0, 0, 0.0, False))[3]
            self._pending[path] = (*seen, time.monotonic(), renamed)

    def ready(self) -> list[Path]:
        """Nominated files whose size and modification time have not changed for
        ``settle_s`` seconds (or that were renamed into place) and that hold what their
        header declares, in sorted order; one still short of it is held until
        ``max_wait_s`` after its last change, then released all the same (and the log
        says so). Released files are forgotten here, so each is released once (a later
        change nominates it again)."""
        now = time.monotonic()
        out = []
        with self._lock:
            items = list(self._pending.items())
        for path, (size, mtime, since, renamed) in items:
            try:
                st = path.stat()
            except OSError:  # gone again (a temporary file, a deleted upload)
                with self._lock:
                    self._pending.pop(path, None)
                continue
            now_seen = (st.st_size, st.st_mtime_ns)
            if now_seen != (size, mtime) and not renamed:  # still changing: wait from now
                with self._lock:
                    self._pending[path] = (*now_seen, now, renamed)
                continue
            if st.st_size == 0 or not (renamed or now - since >= self.settle_s):
                continue
            short = self.short(path)
            if short and now - since < self.max_wait_s:
                continue  # the header says more is coming: a slow link's pause
            if short:
                log.warning("%s: holds less than its header declares and has not changed "
                            "for %g s (--max-wait); judged as it is (status truncated)",
                            path, self.max_wait_s)
            out.append(path)
            with self._lock:
                self._pending.pop(path, None)
        return sorted(out)

    @staticmethod
    def short(path: Path) -> bool:
        """Whether ``path``'s header declares more sound than the file holds."""
        try:
            short = inspect(path).short_by
        except OSError:
            return False
        return bool(short)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


def watch(predictor: Predictor, folders: list[str], results: ResultsLog, columns: list[str],
          settle_s: float = 2.0, poll_s: float | None = None,
          on_batch: Callable[[int], None] | None = None, max_wait_s: float = 600.0) -> int:
    """Judge what ``folders`` hold and whatever arrives, until Ctrl-C or SIGTERM; returns
    how many recordings this run judged (re-judged ones included). A stop signal ends the
    wait at once; a batch being judged stops at its next recording, keeping the rows
    already written."""
    judged = 0
    # what each recording looked like when judged (size, mtime): a change means judge again
    judged_as: dict[Path, tuple[int, int] | None] = {}
    with FolderWatcher(folders, settle_s, poll_s, max_wait_s) as watcher:
        try:  # what is there already: judged once complete, like anything that arrives
            existing = find_recordings(folders)
        except InputError:  # empty folders: only new arrivals
            existing = []
        now = time.time()
        backlog = []
        for path in existing:
            if results.done(path):
                judged_as[path] = _stamp(path)
                continue
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            # unchanged for longer than settle_s and whole, or short of its header for
            # longer than --max-wait: judged right away; else watched like an arrival
            if age >= settle_s and (age >= max_wait_s or not watcher.short(path)):
                backlog.append(path)
            else:
                watcher.nominate(path)
        log.info("watching %s (%s, settle %g s, max wait %g s); %d recording(s) already "
                 "judged, %d waiting to be judged, %d still changing", ", ".join(folders),
                 f"polling every {poll_s:g} s" if poll_s else "file events", settle_s,
                 max_wait_s, results.existing, len(backlog), watcher.pending())
        ready = backlog
        while signals.pending() is None:
            if not ready:
                time.sleep(min(0.25, settle_s / 4 or 0.25))
                ready = watcher.ready()
                continue
            stamps = {p: _stamp(p) for p in ready}  # as judged: a later change counts
            again = [p for p in ready if results.done(p) and stamps[p] != judged_as.get(p)]
            todo = [p for p in ready if not results.done(p)] + again
            judged_as.update((p, stamps[p]) for p in todo)
            n = judge_new(predictor, todo, results, columns, again=again)
            ready = []
            judged += n
            if n:
                log.info("judged %d recording(s)%s; %d in %s", n,
                         f" ({len(again)} again: changed since judged)" if again else "",
                         results.rows, results.path)
                if on_batch:
                    on_batch(n)
    return judged


def _stamp(path: Path) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of ``path``, or ``None`` when it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns
