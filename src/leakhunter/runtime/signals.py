"""Ctrl-C and SIGTERM as one exception, raised at safe points.

The CLI calls :func:`install`. The handler only records the signal; long loops raise it as
:class:`Interrupted` (a ``KeyboardInterrupt``) at their next safe point by calling
:func:`check` -- every :func:`leakhunter.runtime.log.progress_bar` step does -- so the library's
clean-up runs and no partial file is left. (Raising from the handler itself is unreliable:
Python drops an exception raised while a finaliser or weakref callback runs, and prints a
traceback.) A second signal before the first was acted on raises at once.
Without :func:`install` (library use), Python's own Ctrl-C handling applies.
"""

from __future__ import annotations

import signal
from typing import Any

_pending: dict[str, int | None] = {"signum": None}


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop; ``signum`` says how (SIGINT or SIGTERM)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handler(signum: int, frame: Any) -> None:
    if _pending["signum"] is not None:  # asked twice: stop now
        raise Interrupted(signum)
    _pending["signum"] = signum


def install() -> None:
    """Route SIGINT and SIGTERM to :class:`Interrupted` (call from the main thread)."""
    _pending["signum"] = None
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def check() -> None:
    """Raise :class:`Interrupted` if a stop signal has arrived."""
    signum = _pending["signum"]
    if signum is not None:
        raise Interrupted(signum)


def pending() -> int | None:
    """The stop signal that has arrived (without raising), or ``None``."""
    return _pending["signum"]


def clear() -> None:
    """Forget a delivered signal (once the CLI has reported it)."""
    _pending["signum"] = None
