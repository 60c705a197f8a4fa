"""The survey report's locations (``report --locations locations.csv``): where between two
sensors the correlator placed each pair's common sound.

:func:`read_locations` reads the CSV ``leakhunter locate --out`` writes
(:data:`leakhunter.locate.run.LOCATION_COLUMNS`); a missing file or a missing required
column is an :class:`InputError`, while a row with a bad number is kept and shown with what
is wrong with it. :func:`locations_html` renders the report's "Locations" section, one
block per pair (located first, by peak quality, then outside, no correlation, bad input):
an inline SVG of the pipe from A to B with the position and its interval, a line of facts,
and the correlation plot embedded as a data URI. Nothing here needs torch.
"""

from __future__ import annotations

import base64
import csv
import math
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..recordings.audio import parse_name

LOCATED, OUTSIDE, NO_CORRELATION, BAD_INPUT = "located", "outside", "no correlation", "bad input"
STATUSES = (LOCATED, OUTSIDE, NO_CORRELATION, BAD_INPUT)
"""The correlator's statuses (:data:`leakhunter.locate.estimate.STATUSES`), in the order the
section shows them."""

REQUIRED = ("a", "b", "distance_m", "status", "position_m", "low_m", "high_m")
"""Columns without which a file is not a locations file."""

NUMBERS = ("distance_m", "wave_speed_m_s", "delay_s", "position_m", "low_m", "high_m", "peak",
           "coherence", "band_low_hz", "band_high_hz", "speed_low_m_s", "speed_high_m_s",
           "delay_error_s")
TEXTS = ("a", "b", "status", "reason", "notes", "speed_source", "plot")

PLOT_CAP_BYTES = 20_000_000  # correlation plots embedded at most, best located pairs first
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# the drawing, in SVG user units: the pipe runs from X0 (sensor A) to X1 (sensor B)
WIDTH, HEIGHT, X0, X1, PIPE_Y = 720, 100, 40.0, 680.0, 52.0
MAX_TICKS = 8  # tick intervals at most along the pipe
MIN_BAND = 4.0  # an interval is drawn at least this wide (SVG units), or the marker hides it
REASON_CHARS = 100  # a longer reason is cut short in the drawing and shown whole below it
COLOURS = {LOCATED: "#b3121f", OUTSIDE: "#8a4b00"}


@dataclass
class Pair:
    """One row of a locations file. ``numbers``: the columns of :data:`NUMBERS` as finite
    floats or ``None``; ``problems``: what is wrong with the row, shown beside it."""

    row: int  # the CSV line (the header is line 1)
    texts: dict[str, str]
    numbers: dict[str, float | None]
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.texts["status"]

    def sensor(self, end: str) -> str:
        """Sensor ``a`` or ``b``'s id from its recording's name, else the file name."""
        path = self.texts[end]
        meta = parse_name(path)
        return meta.sensor_id or Path(path).name or path or "?"

    def rank(self) -> tuple[int, float]:
        order = STATUSES.index(self.status) if self.status in STATUSES else len(STATUSES)
        peak = self.numbers["peak"]
        return order, -(peak if peak is not None else -math.inf)


@dataclass
class Locations:
    source: Path
    pairs: list[Pair]  # in the section's order

    def counts(self) -> dict[str, int]:
        """How many pairs per status, in :data:`STATUSES` order (others after)."""
        counts: dict[str, int] = {}
        for p in self.pairs:
            counts[p.status or "(none)"] = counts.get(p.status or "(none)", 0) + 1
        return counts


def read_locations(path: str | Path) -> Locations:
    """Read ``locations.csv``. Raises :class:`InputError` naming the file (and the columns)
    when it is missing, not UTF-8 text, or lacks a column of :data:`REQUIRED`."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: a folder, not a locations file")
    if not path.is_file():
        raise InputError(f"{path}: no such locations file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a leakhunter locations file (not UTF-8 text)") from None
    reader = csv.DictReader(text.splitlines())
    columns = list(reader.fieldnames or [])
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        one = " (one pair's JSON)" if text.lstrip().startswith("{") else ""
        raise InputError(f"{path}: not a leakhunter locations file{one} (no column "
                         f"{', '.join(missing)}; `leakhunter locate --pairs or --layout ... "
                         f"--out FILE.csv` writes one)")
    pairs = [_pair(n, record) for n, record in enumerate(reader, start=2)]
    pairs.sort(key=Pair.rank)  # stable: file order within a status
    return Locations(path, pairs)


def _pair(n: int, record: dict[str, Any]) -> Pair:
    texts = {k: str(record.get(k) or "").strip() for k in TEXTS}
    pair = Pair(n, texts, {})
    for key in NUMBERS:
        value = str(record.get(key) or "").strip()
        number = None
        if value:
            try:
                number = float(value)
            except ValueError:
                pair.problems.append(f"{key} {value!r} is not a number")
            else:
                if not math.isfinite(number):
                    pair.problems.append(f"{key} {value!r} is not a finite number")
                    number = None
        pair.numbers[key] = number
    status, num = pair.status, pair.numbers
    if status not in STATUSES:
        pair.problems.append(f"unknown status {status!r} (expected {', '.join(STATUSES)})")
    if status in (LOCATED, OUTSIDE):
        if num["distance_m"] is None or num["distance_m"] <= 0:
            if num["distance_m"] is not None:
                pair.problems.append(f"distance_m {num['distance_m']:g} is not positive")
            num["distance_m"] = None
        drawn = num["position_m"] is not None and num["distance_m"] is not None
        absent = [k for k in ("position_m", "low_m", "high_m")[:3 if status == LOCATED else 1]
                  if num[k] is None and not record.get(k)]
        if absent or num["distance_m"] is None:
            what = "its interval is" if drawn else "it is"
            pair.problems.append(f"{'an' if status == OUTSIDE else 'a'} {status} pair without "
                                 f"{', '.join(absent or ['a distance'])}: {what} not drawn")
        if status == LOCATED and drawn:
            pos, d, low, high = num["position_m"], num["distance_m"], num["low_m"], num["high_m"]
            if not 0 <= pos <= d:
                pair.problems.append(f"a located position of {pos:g} m lies off the "
                                     f"{d:g} m span (drawn at the end)")
            if low is not None and high is not None and not min(low, high) <= pos <= max(
                    low, high):
                pair.problems.append(f"position_m {pos:g} lies outside its own interval")
    elif num["distance_m"] is not None and num["distance_m"] <= 0:
        num["distance_m"] = None
    return pair


# --- the section ----------------------------------------------------------------------------

def locations_html(locations: Locations, alerts: dict[str, bool] | None = None,
                   cap_bytes: int = PLOT_CAP_BYTES) -> tuple[str, dict[str, Any]]:
    """The report's "Locations" section and what it holds: ``pairs``, ``counts`` (per
    status), ``plots`` (embedded), ``plots_missing``, ``plots_capped``. ``alerts``: sensor
    id -> whether the survey's sensor view alerts, shown beside the ids it knows."""
    alerts = alerts or {}
    stats: dict[str, Any] = {"source": str(locations.source), "pairs": len(locations.pairs),
                             "counts": locations.counts(), "plots": 0, "plots_missing": 0,
                             "plots_capped": 0, "plot_bytes": 0}
    counts = ", ".join(f"{n} {s}" for s, n in stats["counts"].items())
    blocks = [_block(i, p, locations.source.parent, alerts, stats, cap_bytes)
              for i, p in enumerate(locations.pairs, start=1)]
    head = (f'<p class="note" id="locations-note">{len(locations.pairs)} pair(s) from '
            f'{escape(str(locations.source))}{": " + escape(counts) if counts else ""}. '
            f'Positions are metres from sensor A along the pipe; the shaded band is the '
            f'interval, the triangle the most likely position.</p>')
    body = "\n".join(blocks) if blocks else '<p class="note">No pairs in the file.</p>'
    return (f'<section id="locations">\n<h2>Locations</h2>\n{head}\n{body}\n</section>\n',
            stats)


def _block(i: int, p: Pair, folder: Path, alerts: dict[str, bool], stats: dict[str, Any],
           cap_bytes: int) -> str:
    cls = p.status.replace(" ", "-") if p.status in STATUSES else "unknown"
    title = (f'<h3>{_sensor_html(p.sensor("a"), alerts)} &ndash; '
             f'{_sensor_html(p.sensor("b"), alerts)} '
             f'<span class="pair-status {cls}">{escape(p.status or "no status")}</span></h3>')
    parts = [f'<div class="pair {cls}" id="pair-{i}" data-status="{escape(p.status)}">',
             title, pair_svg(p), f'<p class="pair-facts">{escape(_facts(p))}</p>']
    files = f"A: {p.texts['a'] or '–'} · B: {p.texts['b'] or '–'} · row {p.row}"
    parts.append(f'<p class="note pair-files">{escape(files)}</p>')
    reason = p.texts["reason"]
    drawn = p.status in (NO_CORRELATION, BAD_INPUT) and _short(reason, REASON_CHARS) == reason
    shown = [reason] if reason and not drawn else []  # the drawing shows it whole already
    shown += [p.texts["notes"]] if p.texts["notes"] else []
    for text in shown:
        parts.append(f'<p class="pair-reason">{escape(text)}</p>')
    for problem in p.problems:
        parts.append(f'<p class="warn pair-problem">In the file: {escape(problem)}.</p>')
    parts.append(_plot_html(p, folder, stats, cap_bytes))
    parts.append("</div>")
    return "\n".join(x for x in parts if x)


def _sensor_html(sensor: str, alerts: dict[str, bool]) -> str:
    if sensor not in alerts:
        return escape(sensor)
    state = ('<span class="LEAK">alerting</span>' if alerts[sensor]
             else '<span class="note">not alerting</span>')
    return f'<a href="#sensors">{escape(sensor)}</a> <small>({state})</small>'


def _facts(p: Pair) -> str:
    n = p.numbers
    facts = []
    if n["distance_m"] is not None:
        facts.append(f"A to B {n['distance_m']:g} m")
    if n["wave_speed_m_s"] is not None:
        speed = f"wave speed {n['wave_speed_m_s']:g} m/s"
        if n["speed_low_m_s"] is not None and n["speed_high_m_s"] is not None and \
                n["speed_low_m_s"] != n["speed_high_m_s"]:  # (a given speed has no range)
            speed += f" ({n['speed_low_m_s']:g}–{n['speed_high_m_s']:g})"
        facts.append(speed + (f", {p.texts['speed_source']}" if p.texts["speed_source"]
                              else ""))
    if n["delay_s"] is not None:
        error = n["delay_error_s"]
        facts.append(f"delay {n['delay_s'] * 1e3:.3f}" +
                     (f" ± {error * 1e3:.3f}" if error is not None else "") + " ms")
    if n["peak"] is not None:
        facts.append(f"peak quality {n['peak']:.1f}")
    if n["coherence"] is not None:
        facts.append(f"coherence {n['coherence']:.3f}")
    if n["band_low_hz"] is not None and n["band_high_hz"] is not None:
        facts.append(f"band {n['band_low_hz']:g}–{n['band_high_hz']:g} Hz")
    return " · ".join(facts) or "no measurements"


def _plot_html(p: Pair, folder: Path, stats: dict[str, Any], cap_bytes: int) -> str:
    name = p.texts["plot"]
    if not name:
        return ""
    path = Path(name) if os.path.isabs(name) else folder / name
    note = '<p class="note plot-note">Correlation plot {}</p>'
    try:
        data = path.read_bytes() if path.is_file() else None
    except OSError as exc:
        stats["plots_missing"] += 1
        return note.format(f"cannot be read: {escape(name)} ({escape(exc.strerror or '')}).")
    if data is None:
        stats["plots_missing"] += 1
        return note.format(f"not found: {escape(name)} (relative to the locations file's "
                           f"folder).")
    if data[:8] != PNG_SIGNATURE:
        stats["plots_missing"] += 1
        return note.format(f"is not a PNG image: {escape(name)}.")
    if stats["plot_bytes"] + len(data) > cap_bytes:
        stats["plots_capped"] += 1
        return note.format(f"left out: the report's plot size cap ({cap_bytes / 1e6:g} MB) "
                           f"was reached before this pair ({escape(name)}).")
    stats["plots"] += 1
    stats["plot_bytes"] += len(data)
    return (f'<figure class="pair-plot"><img src="data:image/png;base64,'
            f'{base64.b64encode(data).decode("ascii")}" alt="correlation plot of this pair">'
            f'<figcaption class="note">{escape(name)}</figcaption></figure>')


# --- the drawing ----------------------------------------------------------------------------

def tick_step(distance: float) -> float:
    """A 1-2-5 step of metres giving at most :data:`MAX_TICKS` intervals over ``distance``."""
    raw = distance / MAX_TICKS
    if not raw > 0:  # (a span so short that it underflows: one interval)
        return distance
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def scale_x(metres: float, distance: float) -> float:
    """The x (SVG units) of a point ``metres`` from A, clamped to the drawn pipe."""
    return X0 + (X1 - X0) * min(max(metres / distance, 0.0), 1.0)


def pair_svg(p: Pair) -> str:
    """The pipe from A (left) to B (right) to scale, with ticks, the interval as a band and
    the position as a marker; or the line alone with the reason."""
    n, status = p.numbers, p.status
    d = n["distance_m"]
    colour = COLOURS.get(status, "#5d6778")
    dash = "" if status in (LOCATED, OUTSIDE) else ' stroke-dasharray="8 5"'
    out = [f'<svg class="pipe" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="{escape(_summary(p), quote=True)}" xmlns="http://www.w3.org/2000/svg">',
           f'<line class="pipe-line" x1="{X0:g}" y1="{PIPE_Y:g}" x2="{X1:g}" y2="{PIPE_Y:g}" '
           f'stroke="#14324f" stroke-width="4"{dash}/>']
    if d is not None:
        step = tick_step(d)
        for k in range(int(d / step + 1e-9) + 1):
            t = round(k * step, 9)
            x = scale_x(t, d)
            out.append(f'<line class="tick" x1="{x:.2f}" y1="{PIPE_Y:g}" x2="{x:.2f}" '
                       f'y2="{PIPE_Y + 8:g}" stroke="#5d6778"/>'
                       f'<text x="{x:.2f}" y="{PIPE_Y + 20:g}" text-anchor="middle" '
                       f'font-size="11" fill="#5d6778">{t:g} m</text>')
    for x in (X0, X1):
        out.append(f'<circle class="sensor" cx="{x:g}" cy="{PIPE_Y:g}" r="6" fill="#14324f"/>')
    a, b = _short(p.sensor("a")), _short(p.sensor("b"))
    out.append(f'<text class="sensor-a" x="4" y="{HEIGHT - 6}" font-size="12" '
               f'fill="#1d2430">A · {escape(a)}</text>'
               f'<text class="sensor-b" x="{WIDTH - 4}" y="{HEIGHT - 6}" font-size="12" '
               f'text-anchor="end" fill="#1d2430">{escape(b)} · B</text>')
    out.extend(_marks(p, colour))
    out.append("</svg>")
    return "".join(out)


def _marks(p: Pair, colour: str) -> list[str]:
    n, status, d = p.numbers, p.status, p.numbers["distance_m"]
    pos, low, high = n["position_m"], n["low_m"], n["high_m"]
    if status == LOCATED and d is not None and pos is not None:
        out = []
        if low is not None and high is not None:
            lo, hi = sorted((low, high))
            x_lo, x_hi = scale_x(lo, d), scale_x(hi, d)
            widen = max(MIN_BAND - (x_hi - x_lo), 0.0) / 2  # a narrow interval stays visible
            x_lo, x_hi = x_lo - widen, x_hi + widen
            out.append(f'<rect class="interval" x="{x_lo:.2f}" y="{PIPE_Y - 10:g}" '
                       f'width="{x_hi - x_lo:.2f}" height="20" fill="{colour}" '
                       f'fill-opacity="0.25"><title>interval {lo:.1f}–{hi:.1f} m from A'
                       f'</title></rect>')
        return out + _marker(scale_x(pos, d), _position_label(pos, low, high), colour)
    if status == OUTSIDE and d is not None and pos is not None:
        at_a = pos <= 0 or (pos < d and pos < d - pos)
        label = f"at or beyond {'A' if at_a else 'B'} ({_position_label(pos, low, high)})"
        return _marker(X0 if at_a else X1, label, colour)
    if status in (LOCATED, OUTSIDE):
        return [_label(WIDTH / 2, f"{status}, but the file gives no position to draw",
                       colour, "position-label")]
    text = p.texts["reason"] or (status if status else "no status")
    return [_label(WIDTH / 2, _short(text, REASON_CHARS), colour, "reason-label")]


def _position_label(pos: float, low: float | None, high: float | None) -> str:
    label = f"{pos:.1f} m from A"
    if low is not None and high is not None:
        label += f" ({min(low, high):.1f}–{max(low, high):.1f})"
    return label


def _marker(x: float, label: str, colour: str) -> list[str]:
    top = PIPE_Y - 22
    return [f'<polygon class="position" points="{x - 7:.2f},{top:g} {x + 7:.2f},{top:g} '
            f'{x:.2f},{PIPE_Y - 4:g}" fill="{colour}"/>',
            _label(x, label, colour, "position-label")]


def _label(x: float, text: str, colour: str, cls: str) -> str:
    half = len(text) * 3.4  # about half the width of 12-unit text
    x = min(max(x, 4 + half), WIDTH - 4 - half)
    return (f'<text class="{cls}" x="{x:.2f}" y="{PIPE_Y - 28:g}" text-anchor="middle" '
            f'font-size="12" fill="{colour}">{escape(text)}</text>')


def _short(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _summary(p: Pair) -> str:
    n = p.numbers
    if p.status == LOCATED and n["position_m"] is not None:
        return (f"{p.sensor('a')} to {p.sensor('b')}: "
                f"{_position_label(n['position_m'], n['low_m'], n['high_m'])}")
    return f"{p.sensor('a')} to {p.sensor('b')}: {p.status}"
