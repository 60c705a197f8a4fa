"""Logging and progress bars, configured once by the CLI.

Library modules only call ``logging.getLogger(__name__)`` and :func:`progress_bar`; the CLI
calls :func:`setup_logging`. Every log line carries the seconds elapsed since start-up;
colour is used only when stderr is a terminal; progress bars are shown only on a terminal
and never when ``--quiet``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import signals

ENV_LEVEL = "LEAKHUNTER_LOG_LEVEL"

_START = time.time()  # import time of the package: the CLI's start-up
_state = {"bars": True}

_COLOURS = {
    logging.DEBUG: "\033[2m",
    logging.INFO: "",
    logging.WARNING: "\033[33m",
    logging.ERROR: "\033[31m",
    logging.CRITICAL: "\033[1;31m",
}
_RESET = "\033[0m"


class ElapsedFormatter(logging.Formatter):
    """``[  12.3s] WARNING message``: elapsed seconds, level (when not INFO), message."""

    def __init__(self, colour: bool):
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        elapsed = record.created - _START
        level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        text = f"[{elapsed:7.1f}s] {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if self.colour and _COLOURS.get(record.levelno):
            text = f"{_COLOURS[record.levelno]}{text}{_RESET}"
        return text


class _TqdmHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` through tqdm, so log lines do not tear an active
    progress bar (and a replaced stderr, as in tests, is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


class _LogFileHandler(logging.FileHandler):
    """A log file that, when the disk fails, says so once and goes quiet (the console log
    goes on) instead of printing logging's traceback for every line."""

    def handleError(self, record: logging.LogRecord) -> None:
        if self.level > logging.CRITICAL:
            return
        self.setLevel(logging.CRITICAL + 1)
        error = sys.exc_info()[1]
        logging.getLogger("leakhunter").warning(
            "%s: writing the log failed (%s); the log continues on the console only",
            self.baseFilename, getattr(error, "strerror", None) or error)


def add_log_file(path: str | Path) -> logging.Handler:
    """Also write the log to ``path`` (appending, no colour); returns the handler so the
    caller can remove it with :func:`remove_log_file`. Raises ``StorageError`` when the
    file cannot be opened."""
    from .safe_write import guard

    with guard(path, "opening the log file"):
        handler = _LogFileHandler(path, encoding="utf-8")
    handler.setFormatter(ElapsedFormatter(colour=False))
    handler.setLevel(logging.INFO)  # whatever the console shows (--quiet included)
    logger = logging.getLogger("leakhunter")
    logger.addHandler(handler)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    return handler


def remove_log_file(handler: logging.Handler) -> None:
    logging.getLogger("leakhunter").removeHandler(handler)
    try:
        handler.close()
    except OSError:  # its last flush failed too; the run's own result stands
        pass


def setup_logging(verbose: int = 0, quiet: bool = False, debug: bool = False) -> None:
    """Configure the ``leakhunter`` logger: level from flags, else ``LEAKHUNTER_LOG_LEVEL``,
    else INFO. ``quiet`` shows warnings and errors only and hides progress bars."""
    if debug or verbose >= 2:
        level = logging.DEBUG
    elif quiet:
        level = logging.WARNING
    elif verbose == 1:
        level = logging.DEBUG
    else:
        name = os.environ.get(ENV_LEVEL, "INFO").upper()
        level = logging.getLevelName(name) if isinstance(logging.getLevelName(name), int) \
            else logging.INFO
    handler = _TqdmHandler()
    handler.setFormatter(ElapsedFormatter(colour=sys.stderr.isatty()))
    handler.setLevel(level)  # the console's level; a run's log file keeps INFO
    root = logging.getLogger("leakhunter")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    _state["bars"] = not quiet


class _Bar(tqdm):
    """A tqdm bar whose every step is a safe point for Ctrl-C / SIGTERM."""

    def __iter__(self) -> Any:
        for item in super().__iter__():
            signals.check()
            yield item

    def update(self, n: float | None = 1) -> bool | None:
        signals.check()
        return super().update(n)


def progress_bar(iterable: Iterable[Any] | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", safe_point: bool = True) -> tqdm:
    """A tqdm bar on stderr, shown only on a terminal and not under ``--quiet``. Each step
    is a safe point for stopping (:func:`leakhunter.runtime.signals.check`) unless
    ``safe_point`` is false (for loops that stop at points of their own choosing)."""
    return (_Bar if safe_point else tqdm)(
        iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False,
        disable=not (_state["bars"] and sys.stderr.isatty()), file=sys.stderr)
