"""Every file leakhunter writes goes through here: whole or not at all, and one clear error.

Four ways in:

* **Whole files** (checkpoints, JSON, metrics, plots, WAV): the bytes are made in memory,
  then :func:`write_bytes` / :func:`write_text` / :func:`write_json` write them to
  ``<name>.tmp`` beside the target with ``os.write``, flush them to the disk (``fsync``),
  and rename the temporary file over the target (``os.replace``, atomic on POSIX and
  Windows), then flush the folder. A reader sees the old file or the new one, never half
  of one; a failure at any point removes the temporary file and leaves the old target as
  it was.
* **Text written row by row** (evaluate's and predict's CSV files): :func:`writing`
  yields a handle on the temporary file and renames it over the target, flushed, when the
  block ends without an exception; :func:`copy_file` copies a finished file the same way.
* **Streams** too large for memory (the features spool, the HDF5 split files): the caller
  writes under a temporary name inside :func:`guard`, which removes the named temporary
  files on any failure; :func:`require_space` refuses a step that cannot fit.
* **Files appended to in place** (the results log of ``predict --resume``): opened inside
  :func:`guard`, so a failure is the same one line.

Every way, an operating-system failure (disk full, I/O error, quota, read-only file
system, permission) becomes one :class:`~leakhunter.errors.StorageError` naming the path,
the operation and, when known, the space needed and the space free, instead of a traceback.
HDF5 reports such failures as ``RuntimeError`` with ``errno = N`` in the text; those are
recognised too.
"""

from __future__ import annotations

import errno as errnos
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import StorageError

TEMP_SUFFIX = ".tmp"
_HDF5_ERRNO = re.compile(r"errno = (\d+)")
_SPACE_ERRNOS = {errnos.ENOSPC, errnos.EDQUOT, errnos.EFBIG}

Needed = int | Callable[[], int | None] | None  # bytes, or how to work them out afterwards


def os_error_number(exc: BaseException) -> int | None:
    """The OS error number behind ``exc``, or ``None`` when it is not an OS failure.

    ``OSError`` carries it (``None`` for some h5py messages that lack one); HDF5's file
    driver reports write failures as ``RuntimeError`` ``"... errno = 28, error message =
    'No space left on device' ..."``.
    """
    if isinstance(exc, OSError):
        if exc.errno is not None:
            return exc.errno
        found = _HDF5_ERRNO.search(str(exc))
        return int(found.group(1)) if found else 0
    if isinstance(exc, RuntimeError):
        found = _HDF5_ERRNO.search(str(exc))
        return int(found.group(1)) if found else None
    return None


def megabytes(n: int) -> str:
    """``n`` bytes as a short human figure (``"2.8 MB"``, ``"512 kB"``)."""
    if n >= 10**9:
        return f"{n / 1e9:.1f} GB"
    if n >= 10**6:
        return f"{n / 1e6:.1f} MB"
    return f"{max(n, 0) / 1e3:.0f} kB"


def describe(exc: BaseException, path: str | Path, operation: str,
             needed: int | None = None, approx: str = "") -> StorageError:
    """The one-line :class:`StorageError` for OS failure ``exc`` while ``operation`` on
    ``path``; adds the space needed (and free, for a full disk) when ``needed`` is known
    (``approx``: how well, ``"about "`` or ``"more than "``; ``""`` when exact)."""
    number = os_error_number(exc) or None
    reason = os.strerror(number) if number else (str(exc).splitlines() or ["I/O error"])[0]
    code = f" [{errnos.errorcode[number]}]" if number in errnos.errorcode else ""
    space = ""
    if number in _SPACE_ERRNOS or needed:
        free = _free_bytes(Path(path))
        parts = ([f"needed {approx}{megabytes(needed)}"]
                 if needed else []) + \
            ([f"{megabytes(free)} free"] if free is not None and number in _SPACE_ERRNOS
             else [])
        space = f" ({', '.join(parts)})" if parts else ""
    return StorageError(f"{path}: {operation} failed: {reason}{code}{space}; temporary files "
                        f"removed, earlier files unchanged", str(path), operation, number)


def _free_bytes(path: Path) -> int | None:
    for folder in (path.parent, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def _remove(paths: Iterable[Path]) -> None:
    for p in paths:
        try:
            Path(p).unlink(missing_ok=True)
        except OSError:  # e.g. the disk has gone read-only: nothing more can be done
            pass


@contextmanager
def guard(path: str | Path, operation: str, needed: Needed = None, *,
          cleanup: Iterable[str | Path] = (), approx: str = "") -> Iterator[None]:
    """Turn an OS failure inside the block into a :class:`StorageError` about ``path``.

    ``cleanup``: temporary files removed when the block fails in any way (Ctrl-C included).
    ``needed``: the bytes the step needed, or a function that works them out after the
    failure (``approx``: see :func:`describe`). Exceptions that are not OS failures pass
    through unchanged.
    """
    temps = [Path(p) for p in cleanup]
    try:
        yield
    except StorageError:  # already described by an inner step (it is an OSError too)
        _remove(temps)
        raise
    except (OSError, RuntimeError) as exc:
        if os_error_number(exc) is None:
            _remove(temps)
            raise
        size = needed() if callable(needed) else needed  # before the temporaries go
        _remove(temps)
        raise describe(exc, path, operation, size, approx) from None
    except BaseException:
        _remove(temps)
        raise


def require_space(folder: str | Path, needed: int, operation: str) -> None:
    """Raise :class:`StorageError` before ``operation`` when ``folder``'s file system has
    less than ``needed`` bytes free. For writers that cannot be trusted to fail cleanly
    half-way: HDF5, after a write fails for want of space, keeps unwritable metadata and
    may print errors or crash when its objects are freed; it must not start short."""
    free = _free_bytes(Path(folder) / "_")
    if free is not None and free < needed:
        err = OSError(errnos.ENOSPC, os.strerror(errnos.ENOSPC))
        raise describe(err, folder, operation, needed, approx="about ")


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to file descriptor ``fd`` (``os.write`` may write less)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def fsync_file(path: str | Path) -> None:
    """Flush a file written by another library (HDF5) to the disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the rename still stands
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes | bytearray | memoryview, operation: str,
                temp: str | Path | None = None) -> Path:
    """Replace ``path`` by ``data`` atomically and durably (see the module docstring).

    ``temp``: the temporary name (default ``<name>.tmp`` beside ``path``). Creates missing
    parent folders. Raises :class:`StorageError`; then ``path`` is as it was.
    """
    path = Path(path)
    tmp = Path(temp) if temp is not None else path.with_name(path.name + TEMP_SUFFIX)
    with guard(path, operation, needed=len(memoryview(data).cast("B")), cleanup=[tmp]):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0),
                     0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)  # the bytes reach the disk before the name does
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    return path


def write_text(path: str | Path, text: str, operation: str,
               temp: str | Path | None = None) -> Path:
    """:func:`write_bytes` of ``text`` in UTF-8."""
    return write_bytes(path, text.encode("utf-8"), operation, temp)


def replace(temp: str | Path, path: str | Path, operation: str) -> None:
    """Rename ``temp``, a finished file another library wrote (HDF5, libsndfile, the ONNX
    exporter), over ``path``: its bytes are flushed to the disk first, the rename is atomic
    and flushed too. On failure ``temp`` is removed and ``path`` is as it was."""
    with guard(path, operation, cleanup=[temp]):
        fsync_file(temp)
        os.replace(temp, path)
        _fsync_folder(Path(path).parent)


def write_json(path: str | Path, data: Any, operation: str | None = None) -> Path:
    """:func:`write_text` of ``data`` as indented JSON (``operation`` defaults to
    "writing <name>")."""
    path = Path(path)
    return write_text(path, json.dumps(data, indent=2) + "\n",
                      operation or f"writing {path.name}")


@contextmanager
def writing(path: str | Path, operation: str, *, temp: str | Path | None = None,
            newline: str | None = "", encoding: str = "utf-8") -> Iterator[IO[str]]:
    """A text handle on ``temp`` (default ``<path>.tmp``); when the block ends without an
    exception the file is flushed to the disk and renamed over ``path`` (creating missing
    parent folders). Any failure (an OS error as :class:`StorageError`, Ctrl-C, a bug in
    the block) removes the temporary file and leaves ``path`` as it was. ``newline=""``
    suits :mod:`csv`."""
    path = Path(path)
    tmp = Path(temp) if temp is not None else path.with_name(path.name + TEMP_SUFFIX)
    with guard(path, operation, cleanup=[tmp]):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", newline=newline, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)


def copy_file(src: str | Path, dst: str | Path, operation: str) -> Path:
    """Copy ``src`` to ``dst`` through ``<dst>.tmp``: ``dst`` is the old file or the whole
    new one, never part of it."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + TEMP_SUFFIX)
    with guard(dst, operation, cleanup=[tmp]):
        shutil.copyfile(src, tmp)
        fsync_file(tmp)
        os.replace(tmp, dst)
        _fsync_folder(dst.parent)
    return dst


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
