"""Exceptions raised by the library.

The CLI turns any :class:`LeakhunterError` into one line on stderr and a non-zero exit
code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LeakhunterError(Exception):
    """Base class of every error a user can cause and fix."""


class InputError(LeakhunterError):
    """The input given on the command line or to a library call is unusable
    (a missing folder, no recordings, a bad manifest, a split left without a label)."""


class ConfigError(LeakhunterError):
    """A configuration value or configuration file is invalid."""


class DatasetError(LeakhunterError):
    """A dataset file is missing, incomplete, corrupted or inconsistent."""


class AudioError(LeakhunterError):
    """One recording cannot be used.

    ``kind`` says why, in one of the words of :data:`AUDIO_ERROR_KINDS`, set where the error
    is raised: ``predict`` writes it as the recording's status, so statuses never depend on
    wording. ``reason`` is the phrase for people (build's skipped list, log lines) and may
    be reworded freely. Builds skip such recordings and list them instead of stopping.
    """

    def __init__(self, path: str, kind: str, reason: str):
        if kind not in AUDIO_ERROR_KINDS:
            raise ValueError(f"unknown AudioError kind {kind!r}")
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.kind = kind
        self.reason = reason


AUDIO_ERROR_KINDS = (
    "unreadable",  # not audio, damaged beyond decoding, or cannot be opened
    "truncated",  # holds less than its header declares (an upload cut off, a card full)
    "empty",  # no samples
    "invalid samples",  # NaN or infinite samples
    "silence",  # RMS at or below the silence floor
    "too short",  # shorter than the minimum duration
)
"""Why a recording cannot be used: the ``kind`` of :class:`AudioError`, and the status
``predict`` writes for it."""


class StorageError(LeakhunterError, OSError):
    """The operating system failed a file operation: disk full, I/O error, quota, read-only
    file system, permission. The message names the path, the operation and, when known, the
    space the step needed; the step's temporary files are already removed and the files of
    earlier steps are as they were. Also an ``OSError`` (code that caught the OS's own error
    still catches it), with ``errno`` (``None`` if unknown) and ``filename`` set.
    """

    def __init__(self, message: str, path: str, operation: str, errno: int | None):
        super().__init__(message)
        self.path, self.operation = path, operation
        self.errno, self.filename = errno, path

    def __str__(self) -> str:  # OSError's own would be "[Errno N] None: 'path'"
        return str(self.args[0])
