"""Figures drawn for files: matplotlib's object-oriented API on an Agg canvas (no pyplot
state, no display), saved through :mod:`.safe_write` so a reader never sees half a plot.

The evaluation plots, the training curves, a learn run's rounds and a study's plots all
draw here, so they share size, resolution and colours. matplotlib is imported inside the
functions: it costs time at start-up and most commands never draw.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import safe_write

DPI = 120
FORMATS = ("png", "svg", "pdf", "jpg")  # what a plot's file name may end in
SIZE = (6.0, 4.5)
SEGMENTS = "tab:blue"  # one colour per level throughout, so plots read alike
RECORDINGS = "tab:orange"
LEAK = "tab:red"
NO_LEAK = "tab:green"


def figure(size: tuple[float, float] = SIZE, ncols: int = 1,
           nrows: int = 1) -> tuple[Any, Any]:
    """A figure on its own Agg canvas (no pyplot) and its axes (``nrows`` x ``ncols``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="tight")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols)
    return fig, axes


def format_of(path: str | Path) -> str:
    """The picture format a file name asks for by its suffix (none: png);
    :class:`ConfigError` for one not in :data:`FORMATS`, before anything is computed."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in FORMATS:
        raise ConfigError(f"{path}: a plot is written as {', '.join(FORMATS)}, not .{fmt}")
    return fmt


def save(fig: Any, path: Path, fmt: str) -> Path:
    """Write ``fig`` to ``path`` in ``fmt`` through a temporary file in the same folder
    (drawn in memory first; raises ``StorageError`` when the disk fails)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI)
    return safe_write.write_bytes(path, buffer.getbuffer(), "writing a plot",
                                  temp=path.with_name(f".{path.name}.tmp"))
