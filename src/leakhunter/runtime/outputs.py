"""The one rule for the files a command writes: never over what it reads, never two outputs
in one file, and an existing file only when asked (``--overwrite``).

Every command that writes files named on its command line (``predict``, ``report``,
``export``, ``calibrate``, ``locate``) checks its outputs here before any work, so a typo
such as ``--out`` naming the model costs nothing. Paths are compared as files, not as text:
through symlinks (resolved) and, where the file exists, by device and inode (a hard link,
another spelling of the same path).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError, LeakhunterError

Named = tuple[str, "str | Path | None"]
"""A path and what it is, for messages: ``("--out", "q.csv")``, ``("MODEL", "best.pt")``;
``""`` for a path that needs no name; a ``None`` path (an option not given) is skipped."""


def file_key(path: str | Path) -> tuple[object, ...]:
    """What identifies the file at ``path``: its device and inode when it exists (through
    symlinks), else its resolved path (a file not yet written)."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError:
        return ("path", str(resolved))
    return ("inode", stat.st_dev, stat.st_ino)


def _named(what: str, path: str | Path) -> str:
    return f"{what} {path}" if what else str(path)


def refuse_clashes(outputs: Iterable[Named], inputs: Iterable[Named] = (),
                   advice: str = "write it elsewhere",
                   error: type[LeakhunterError] = InputError) -> None:
    """Raise ``error`` when an output is the same file as an input (``"--out X would
    replace the input MODEL X: <advice>"``) or as an earlier output (``"--sensors X is the
    same file as --out X: give each output its own file"``)."""
    read = {}
    for what, path in inputs:
        if path is not None:
            read.setdefault(file_key(path), (what, path))
    written: dict[tuple[object, ...], tuple[str, str | Path]] = {}
    for what, path in outputs:
        if path is None:
            continue
        key = file_key(path)
        if key in read:
            raise error(f"{_named(what, path)} would replace the input "
                        f"{_named(*read[key])}: {advice}")
        if key in written:
            raise error(f"{_named(what, path)} is the same file as "
                        f"{_named(*written[key])}: give each output its own file")
        written[key] = (what, path)


def refuse_existing(paths: Iterable[Named], overwrite: bool, instead: str = "another --out",
                    error: type[LeakhunterError] = InputError) -> None:
    """Unless ``overwrite``, raise ``error`` for the first path that exists: ``"X: already
    exists (<what>); use --overwrite to replace it or choose <instead>"``."""
    if overwrite:
        return
    for what, path in paths:
        if path is not None and Path(path).exists():
            raise error(f"{path}: already exists{f' ({what})' if what else ''}; use "
                        f"--overwrite to replace it or choose {instead}")
