"""The picture of one pair (``locate --plot FILE.png``): where along the pipe the two
sensors hear something in common, and at which frequencies.

Top: the correlation against position from A (each delay ``tau`` drawn at
``(D + c tau) / 2``), the span between the sensors shaded, the peak and its interval
marked. Bottom: the coherence (less its independent-noise floor) against frequency, with
the band the correlation used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..runtime.figures import LEAK, SEGMENTS, figure, format_of, save

if TYPE_CHECKING:
    from .run import PairResult


def plot_pair(result: PairResult, path: str | Path, title: str = "") -> Path:
    """Draw ``result`` (made with ``curves=True``) to ``path``; the format follows the
    suffix (:func:`~..runtime.figures.format_of`: png, svg, pdf, jpg)."""
    curves = result.curves
    if curves is None:
        raise ValueError("the pair was located without its curves (curves=True)")
    loc, d, c = result.location, result.distance_m, result.location.wave_speed_m_s
    fig, (top, bottom) = figure((7.0, 6.0), nrows=2)
    x = (d + c * curves.delays_s.numpy()) / 2
    keep = abs(curves.delays_s.numpy()) <= curves.search_s
    values = curves.correlation.numpy()
    scale = max(float(abs(values[keep]).max()), 1e-30) if keep.any() else 1.0
    top.plot(x[keep], values[keep] / scale, color=SEGMENTS, lw=0.8)
    top.axvspan(0, d, color="0.92", zorder=0, label="between the sensors")
    top.axvline(0, color="0.4", lw=1)
    top.axvline(d, color="0.4", lw=1)
    top.text(0, 1.02, "A", ha="center", va="bottom", transform=top.get_xaxis_transform())
    top.text(d, 1.02, "B", ha="center", va="bottom", transform=top.get_xaxis_transform())
    if loc.position_m is not None:
        top.axvline(loc.position_m, color=LEAK, lw=1.2,
                    label=f"{loc.status}: {loc.position_m:.1f} m from A")
        if loc.low_m is not None and loc.high_m is not None:
            top.axvspan(loc.low_m, loc.high_m, color=LEAK, alpha=0.2,
                        label=f"interval {loc.low_m:.1f} to {loc.high_m:.1f} m")
    top.set_xlabel("position from A (m)")
    top.set_ylabel("correlation (peak = 1)")
    # (padded: the A and B marks stand just above the axes)
    top.set_title((f"{title}: " if title else "") +
                  f"{loc.status} (peak quality {loc.quality:.1f})", fontsize=10, pad=16)
    top.legend(fontsize=8, loc="best", framealpha=0.9)
    freqs = curves.freqs_hz.numpy()
    bottom.plot(freqs, curves.coherence.numpy(), color=SEGMENTS, lw=0.8,
                label="coherence above the noise floor")
    band = curves.band.numpy()
    bottom.fill_between(freqs, 0, 1, where=band, color=LEAK, alpha=0.15, step="mid",
                        label="band used", transform=bottom.get_xaxis_transform())
    bottom.set_xlabel("frequency (Hz)")
    bottom.set_ylabel("coherence")
    bottom.set_ylim(0, 1)
    bottom.set_xscale("log")
    bottom.set_xlim(max(float(freqs[1]), 1.0), float(freqs[-1]))
    bottom.legend(fontsize=8, loc="upper right")
    return save(fig, Path(path), format_of(path))

