"""Which files are recordings: the one rule ``build``, ``predict``, ``learn`` and
``predict --watch`` all apply.

A file is a recording when its extension is one of :data:`AUDIO_EXTENSIONS`
(case-insensitive) and neither its name nor any folder between it and the folder searched
starts with a dot: hidden files and everything in hidden folders (``.git``, ``.Trash``,
``.thumbnails``, a sync tool's ``.partial`` folder) are skipped alike, wherever the search
starts. A file named explicitly (on the command line or in a manifest) is taken as it is:
naming it is the choice.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError

AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3",
    ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64",
})
"""Extensions scanned for recordings (case-insensitive); any format soundfile decodes."""


def is_recording(path: str | Path, root: str | Path | None = None) -> bool:
    """Whether ``path`` is a recording found by a search of ``root``: an audio extension,
    and no hidden part (a name starting with a dot) from ``root`` down to the file. Without
    ``root``, only the file's own name is looked at."""
    path = Path(path)
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        return False
    try:
        parts = path.relative_to(root).parts if root is not None else (path.name,)
    except ValueError:  # not under root: judge the name alone
        parts = (path.name,)
    return not any(part.startswith(".") for part in parts)


def recordings_under(folder: str | Path) -> list[Path]:
    """The recordings under ``folder``, recursively: a folder's own, sorted by name, then
    each sub-folder's in turn (sorted); hidden folders are not entered
    (:func:`is_recording`)."""
    folder = Path(folder)
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / name for name in sorted(filenames)
                if is_recording(Path(dirpath) / name, folder)]
    return out


def find_recordings(inputs: Iterable[str | Path]) -> list[Path]:
    """Files, folders (recursive) and glob patterns to the list of recordings they name,
    each once, in the order given (a folder's and a pattern's in sorted order).

    A named file is taken whatever its extension; folders contribute the recordings under
    them (:func:`recordings_under`) sorted by path; a pattern contributes the recordings
    among its matches, and those under the folders it matches (``*`` does not match a
    leading dot, as in a shell). Raises
    :class:`InputError` for a path that does not exist or a pattern that matches nothing,
    and when no recording is found at all.
    """
    found: dict[str, Path] = {}
    for item in inputs:
        text = str(item)
        pattern = glob.has_magic(text)
        matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))] if pattern \
            else [Path(text)]
        if not matches or not matches[0].exists():
            raise InputError(f"{text}: matches nothing" if pattern
                             else f"{text}: no such file or folder")
        for path in matches:
            if path.is_dir():
                found.update((str(f), f) for f in sorted(recordings_under(path)))
            elif path.is_file() and (not pattern or is_recording(path)):
                found[str(path)] = path
    if not found:
        raise InputError("no recordings found in the given inputs")
    return list(found.values())
