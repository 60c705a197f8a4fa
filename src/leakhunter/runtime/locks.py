"""One writer per folder: an exclusive OS file lock, released by the OS when its holder dies.

Every command that writes a folder (``build --out``, a ``train`` run directory, new or
resumed) holds ``<folder>/.leakhunter.lock`` locked with ``flock(LOCK_EX | LOCK_NB)`` while
it runs. A second writer is refused at once with :class:`FolderLockedError`, naming the
holder's PID and command, which the holder writes into the lock file; the first finishes
undisturbed. The OS drops the lock when the holder's last descriptor closes, so a crash or
``kill -9`` never leaves a stale lock: the file may stay, but it is not held.

Take it with one line, as a decorator on the library function that writes the folder::

    @locks.writes_folder("out_dir", "build")
    def build_dataset(input_path, out_dir, ...): ...

or as a context manager: ``with locks.folder_lock(path, "tune"): ...``.

Readers take no lock: every file a reader opens is replaced atomically (written under a
temporary name, then renamed), so it sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InputError, LeakhunterError

try:
    import fcntl
except ImportError:  # Windows: msvcrt byte-range locks instead
    fcntl = None  # type: ignore[assignment]
    import msvcrt

LOCK_FILE = ".leakhunter.lock"

F = TypeVar("F", bound=Callable[..., Any])

# Lock descriptors held by this process. A forked child (a pool or DataLoader worker)
# shares them; it closes its copies so that the lock ends with this process, not with the
# last of its children.
_held: dict[Path, int] = {}
_fork_hook = {"installed": False}


class FolderLockedError(LeakhunterError):
    """Another process is writing the folder; ``holder`` is what it wrote about itself."""

    def __init__(self, folder: Path, holder: dict[str, Any]):
        self.folder, self.holder = folder, holder
        if holder.get("pid"):
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder["started"])) \
                if holder.get("started") else "an unknown time"
            who = (f"PID {holder['pid']}" + (f" on {holder['host']}" if holder.get("host")
                                              and holder["host"] != socket.gethostname()
                                              else "")
                   + f" ('{holder.get('command', '?')}', since {since})")
        else:  # it has not written its details yet
            who = "another process"
        super().__init__(f"{folder}: in use by {who}; wait for it to finish or choose "
                         f"another folder")


def command_line() -> str:
    """This process's command line as a user would type it (``leakhunter build ...``)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("__main__.py", "leakhunter"):
        argv[0] = "leakhunter"
    return " ".join(argv)


def _try_lock(fd: int) -> bool:
    """Lock ``fd`` exclusively without waiting; False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:  # Windows reports a held lock as EACCES or EDEADLOCK
        if fcntl is None and exc.errno in (errno.EACCES, errno.EDEADLOCK):
            return False
        raise


def _open_locked(path: Path) -> int:
    """A descriptor of ``path`` holding its exclusive lock; :class:`FolderLockedError`
    when another process holds it.

    A holder removes the file when it is done (so finished folders hold no lock file).
    Whoever opened the file just before that removal could lock the removed file while a
    third process creates and locks a new one; hence the check that the locked file is
    still the one at ``path``, and another try when it is not.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                raise FolderLockedError(path.parent, _read_holder(path))
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _close_in_child() -> None:
    for fd in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


@contextmanager
def folder_lock(folder: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    ``command`` is recorded for a refused writer's message (default: this process's command
    line). Re-entrant within one process (an inner ``with`` on a held folder does nothing).
    On release the lock file is removed (the folder stays, unless this lock created it
    and it is left empty: a command that failed before writing leaves nothing). Raises
    :class:`FolderLockedError` when another process holds it, :class:`InputError` when
    ``folder`` exists and is not a folder, and :class:`~leakhunter.errors.StorageError`
    when the lock file cannot be created.
    """
    from .safe_write import guard  # an OSError here (a read-only disk...) is one line too

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    key = folder.resolve()
    if key in _held:
        yield folder
        return
    path = folder / LOCK_FILE
    created = not folder.exists()
    with guard(path, "taking the folder lock"):
        folder.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(path)
    try:
        if not _fork_hook["installed"] and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_close_in_child)
            _fork_hook["installed"] = True
        _held[key] = fd
        info = {"pid": os.getpid(), "command": command or command_line(),
                "host": socket.gethostname(), "started": time.time()}
        try:  # informative only: a full disk must not stop a run from taking its lock
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(info) + "\n").encode())
        except OSError:
            pass
        yield folder
    finally:
        _held.pop(key, None)
        try:
            path.unlink()  # while still holding the lock: see _open_locked
            if created:  # a run that failed before writing anything leaves no empty folder
                folder.rmdir()  # (fails, and keeps the folder, when anything is in it)
        except OSError:
            pass
        os.close(fd)  # releases the lock


def writes_folder(arg: str | Callable[[dict[str, Any]], str | Path | None],
                  command: str) -> Callable[[F], F]:
    """Decorator: hold the folder lock of argument ``arg`` while the decorated function
    runs. ``arg`` is the argument's name, or a function of the bound arguments (a dict)
    that returns the folder, or ``None`` for a call that takes no lock (under torchrun,
    only rank 0 writes, and only it locks).

    ``command`` names the operation in the lock file when the process is not the
    ``leakhunter`` command line (which is recorded whole).
    """
    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            folder = arg(bound.arguments) if callable(arg) else bound.arguments[arg]
            if folder is None:
                return fn(*args, **kwargs)
            with folder_lock(folder, _describe(command)):
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


def _describe(command: str) -> str:
    line = command_line()
    return line if line.startswith("leakhunter") else f"{command} ({line})"
