"""Which recordings the correlator compares, and with what span and wave speed: pairs named
in a CSV, or pairs found by sensor and time from a layout of the network. No audio is read
here: a bad row becomes a :class:`PairJob` with its ``problem`` set, reported, never a crash.

Pairs file (``leakhunter locate --pairs FILE``)
    A CSV with a header row; UTF-8 (a byte-order mark is fine), blank rows skipped, cells
    and column names stripped, column names in any case; other columns (a known leak
    position, notes) are ignored::

        a,b,distance_m,wave_speed_m_s,material,diameter_mm,wall_mm,leak_m
        night1/A17.wav,night1/B22.wav,212.5,,ductile iron,150,6,80
        /data/B22.wav,/data/C05.wav,180,1250,,,,

    ``a``, ``b``: the two recordings (a relative path is relative to the CSV's folder);
    ``distance_m``: metres between the sensors along the pipe. The wave speed is ``wave_speed_m_s``
    (m/s) when filled, else the Korteweg speed of ``material`` (:func:`.wave_speed.material`:
    ductile iron, cast iron, steel, copper, asbestos cement, pvc, pe and their abbreviations) with
    ``diameter_mm`` (internal) and ``wall_mm`` where filled, the material's typical main otherwise
    (none of the three is looked at when the speed is given). The header needs ``a``, ``b``,
    ``distance_m`` and at least one of ``wave_speed_m_s`` and ``material``; each row one of the two
    filled.

Layout file (``leakhunter locate --layout FILE FOLDER...``)
    The same rules, with sensor ids in place of recordings, a row per neighbouring pair::

        sensor_a,sensor_b,distance_m,material
        A17,B22,212.5,ductile iron

    Recordings are found in the folders (:func:`..recordings.files.find_recordings`), their
    sensor and time read from their names, ``sensor~recording~timestamp~gain.wav``
    (:func:`..recordings.audio.parse_name`, :func:`..recordings.audio.parse_timestamp`);
    sensor ids match exactly. Each recording of ``sensor_a`` is paired with the recording
    of ``sensor_b`` nearest in time (:func:`pairs_from_layout`).
"""

from __future__ import annotations

import bisect
import csv
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import ConfigError, InputError
from ..recordings.audio import parse_name, parse_timestamp
from ..recordings.files import find_recordings
from .wave_speed import WaveSpeed, for_material
from .wave_speed import material as find_material

SPEED_COLUMNS = ("wave_speed_m_s", "material")
PAIR_COLUMNS = ("a", "b", "distance_m")
LAYOUT_COLUMNS = ("sensor_a", "sensor_b", "distance_m")
_EPOCH = datetime(1970, 1, 1)  # naive: names' times as written (zoned ones in UTC)
_LISTED = 5  # names a note lists before "and N more"


@dataclass(frozen=True)
class PairJob:
    """One pair to correlate, or why it cannot be (``problem``, one line; ``""``: usable).

    ``row``: the 1-based data row (blank rows not counted) of the pairs or layout file;
    ``line``: its line in the file. ``a``, ``b``: the recordings (``None`` when the row
    names none, and for a problem of a whole layout row); a problem job keeps what could be
    read. ``speed``: resolved (a given speed wins). ``offset_s`` (layout): B's timestamp
    minus A's, seconds. ``a_label``, ``b_label``: how to print a and b: the path as
    written (pairs file), relative to the folder searched (layout), or the sensor id (a
    problem of a whole layout row). ``sensor_a``, ``sensor_b``: the layout row's sensors.
    """

    row: int
    a: Path | None
    b: Path | None
    distance_m: float | None
    speed: WaveSpeed | None
    problem: str = ""
    offset_s: float | None = None
    a_label: str = ""
    b_label: str = ""
    sensor_a: str = ""
    sensor_b: str = ""
    line: int = 0

    @property
    def usable(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class LayoutPairs:
    """What :func:`pairs_from_layout` found: the jobs (by layout row, then A's timestamp),
    notes for people (one line each), and the recordings left out because their name or
    its timestamp cannot be read (also named in the notes)."""

    jobs: list[PairJob]
    notes: list[str]
    left_out: list[Path]


def resolve_speed(wave_speed_m_s: float | None, material: str | None,
                  diameter_mm: float | None = None, wall_mm: float | None = None) -> WaveSpeed:
    """The wave speed to use: a given speed wins (``WaveSpeed(s, s, s, "given")``), else the
    Korteweg speed of the material (:func:`.wave_speed.for_material`, with the diameter
    and wall where given). :class:`ConfigError` when the speed, diameter or wall is not
    positive, the material is unknown, or neither speed nor material is given."""
    if wave_speed_m_s is not None:
        speed = float(wave_speed_m_s)
        if not (math.isfinite(speed) and speed > 0):
            raise ConfigError(f"the wave speed must be positive, not {speed:g} m/s")
        return WaveSpeed(speed, speed, speed, "given")
    if material is None or not material.strip():
        raise ConfigError("give a wave speed or a pipe material")
    for what, value in (("diameter", diameter_mm), ("wall", wall_mm)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"the pipe {what} must be positive, not {value:g} mm")
    return for_material(material, diameter_mm, wall_mm)


def read_pairs(csv_path: str | Path) -> list[PairJob]:
    """The pairs named in a pairs file (module docstring), one :class:`PairJob` per data
    row, in file order. Raises :class:`InputError` when the file cannot be read, is empty,
    has no data rows, or its header lacks a required column; a bad row (an empty or
    missing file, a distance or speed that is not a positive number, an unknown material,
    neither speed nor material) is a job with ``problem`` set."""
    path = Path(csv_path)
    rows = _read_table(path, "pairs", PAIR_COLUMNS,
                       "'a,b,distance_m' with 'wave_speed_m_s' and/or 'material'")
    jobs = []
    for row, line, cells in rows:
        problems: list[str] = []
        a, b = (path.parent / cells[side] if cells[side] else None for side in ("a", "b"))
        for side, file in (("a", a), ("b", b)):
            if file is None:
                problems.append(f"{side} is empty")
            elif not file.is_file():
                problems.append(f"{side}: {file} is a folder, not a recording" if file.is_dir()
                                else f"{side}: no such file: {file}")
        if not problems and a and b and os.path.samefile(a, b):
            problems.append("a and b are the same file")
        distance, speed, more = _span(cells)
        jobs.append(PairJob(row, a, b, distance, speed, "; ".join(problems + more),
                            a_label=cells["a"], b_label=cells["b"], line=line))
    return jobs


def pairs_from_layout(layout_csv: str | Path, folders: Sequence[str | Path],
                      max_offset_s: float, sensors: set[str] | None = None) -> LayoutPairs:
    """The pairs a layout file (module docstring) implies among the recordings in
    ``folders`` (files, folders searched recursively, or glob patterns). ``sensors``: use
    only the layout rows with ``sensor_a`` or ``sensor_b`` in the set (the sensors that
    alerted tonight, each with its neighbours); ``None``: every row.

    Per layout row used: bad values (an empty or repeated sensor pair, a distance or speed
    that is not a positive number, an unknown material): one problem job; recordings of
    one sensor only: one problem job; of neither: none (a note). Else one job per A
    recording: with the B recording nearest in time, if at most ``max_offset_s`` away and
    not taken by an A recording closer to it; else a problem job naming the nearest B
    recording. Notes name the recordings whose name or timestamp cannot be read, the
    sensors with recordings but in no layout row, and those of ``sensors`` in none.

    Raises :class:`InputError` for an unreadable or malformed layout file, a missing
    folder or no recordings at all; :class:`ConfigError` for a negative ``max_offset_s``.
    """
    if not max_offset_s >= 0:
        raise ConfigError(f"max_offset_s must be non-negative, not {max_offset_s:g}")
    rows = _read_table(Path(layout_csv), "layout", LAYOUT_COLUMNS,
                       "'sensor_a,sensor_b,distance_m' with 'wave_speed_m_s' and/or 'material'")
    by_sensor, unnamed, untimed, labels = _recordings(folders)
    untimed_ids = {parse_name(path).sensor_id for path in untimed}
    notes = [f"{_count(len(left), 'recording')} left out: {why}: "
             f"{_listing(labels[p] for p in left)}"
             for left, why in ((unnamed, "the name is not sensor~recording~timestamp~gain"),
                               (untimed, "the timestamp in the name cannot be read")) if left]
    jobs: list[PairJob] = []
    seen: dict[frozenset[str], int] = {}
    in_layout: set[str] = set()
    silent = []  # layout rows with recordings of neither sensor
    for row, line, cells in rows:
        sa, sb = cells["sensor_a"], cells["sensor_b"]
        in_layout |= {sa, sb} - {""}
        problems = [f"{col} is empty" for col in LAYOUT_COLUMNS[:2] if not cells[col]]
        if sa and sa == sb:
            problems.append("sensor_a and sensor_b are the same sensor")
        elif sa and sb:
            first = seen.setdefault(frozenset((sa, sb)), row)
            if first != row:
                problems.append(f"same sensors as layout row {first}")
        if sensors is not None and not {sa, sb} & sensors:
            continue
        distance, speed, more = _span(cells)
        base = dict(row=row, line=line, distance_m=distance, speed=speed, sensor_a=sa,
                    sensor_b=sb)
        whole = dict(a=None, b=None, a_label=sa, b_label=sb, **base)
        recs_a, recs_b = by_sensor.get(sa, []), by_sensor.get(sb, [])
        if problems or more:
            jobs.append(PairJob(problem="; ".join(problems + more), **whole))
        elif not recs_a and not recs_b:
            silent.append(f"{row} ({sa}, {sb})")
        elif not recs_a or not recs_b:
            has, lacks = (sa, sb) if recs_a else (sb, sa)
            timed = " with a timestamp that can be read" if lacks in untimed_ids else ""
            jobs.append(PairJob(problem=f"sensor {lacks} has no recordings{timed} ({has} has "
                                        f"{len(recs_a or recs_b)})", **whole))
        else:
            jobs += _match(recs_a, recs_b, max_offset_s, base)
    if silent:
        notes.append(f"{_count(len(silent), 'layout row')} with recordings of neither "
                     f"sensor: {_listing(silent)}")
    stray = {s: len(r) for s, r in sorted(by_sensor.items()) if s not in in_layout}
    if stray:
        notes.append(f"{_count(len(stray), 'sensor')} with recordings but in no layout row, "
                     f"left out: " + _listing(f"{s} ({n})" for s, n in stray.items()))
    if sensors is not None and sensors - in_layout:
        notes.append(f"{_count(len(sensors - in_layout), 'sensor')} asked for but in no "
                     f"layout row: {_listing(sorted(sensors - in_layout))}")
    return LayoutPairs(jobs, notes, unnamed + untimed)


@dataclass(frozen=True)
class _Timed:  # a recording with its file-name time, in seconds since 1970 (naive)
    path: Path
    label: str
    seconds: float


def _match(recs_a: list[_Timed], recs_b: list[_Timed], max_offset: float,
           base: dict) -> list[PairJob]:
    """One job per A recording (both lists sorted by time): greedy one-to-one matching
    of the pairs at most ``max_offset`` apart, the closest first; problem jobs for the A
    recordings left without a partner, naming the nearest B recording."""
    times = [r.seconds for r in recs_b]
    candidates = []
    for i, rec in enumerate(recs_a):
        lo = bisect.bisect_left(times, rec.seconds - max_offset)
        hi = bisect.bisect_right(times, rec.seconds + max_offset)
        candidates += [(abs(times[j] - rec.seconds), i, j) for j in range(lo, hi)]
    partner: dict[int, int] = {}  # A index: B index
    taken: set[int] = set()
    for apart, i, j in sorted(candidates):
        if i not in partner and j not in taken and apart <= max_offset:
            partner[i] = j
            taken.add(j)
    jobs, sa, sb = [], base["sensor_a"], base["sensor_b"]
    for i, rec in enumerate(recs_a):
        if i in partner:
            other, problem = recs_b[partner[i]], ""
        else:
            k = bisect.bisect_left(times, rec.seconds)
            near = [j for j in (k - 1, k) if 0 <= j < len(times)]
            other = recs_b[min(near, key=lambda j: (abs(times[j] - rec.seconds), j))]
            apart, limit = abs(other.seconds - rec.seconds), _secs(max_offset)
            problem = (f"timestamps {_secs(apart)} s apart, more than --max-offset {limit} s "
                       f"(nearest {sb} recording: {other.label})" if apart > max_offset else
                       f"every {sb} recording within --max-offset {limit} s is paired with "
                       f"another {sa} recording (nearest: {other.label}, {_secs(apart)} s "
                       f"apart)")
        jobs.append(PairJob(a=rec.path, b=other.path, problem=problem,
                            offset_s=other.seconds - rec.seconds, a_label=rec.label,
                            b_label=other.label, **base))
    return jobs


def _recordings(folders: Sequence[str | Path]) -> tuple[
        dict[str, list[_Timed]], list[Path], list[Path], dict[Path, str]]:
    """The recordings in ``folders`` by sensor (each list sorted by time, then path), those
    whose name has no sensor, those with no timestamp that can be read, and every one's
    label (its path relative to the folder searched; the whole path when not under one, or
    when two would print alike)."""
    paths = find_recordings(folders)
    roots = [Path(f) for f in folders if Path(f).is_dir()]
    labels = {path: next((str(path.relative_to(root)) for root in roots
                          if path.is_relative_to(root)), str(path)) for path in paths}
    clash = Counter(labels.values())
    labels = {path: label if clash[label] == 1 else str(path) for path, label in labels.items()}
    by_sensor: dict[str, list[_Timed]] = {}
    unnamed, untimed = [], []
    for path in paths:
        meta = parse_name(path)
        when = parse_timestamp(meta.timestamp, utc=True) if meta.sensor_id else None
        if not meta.sensor_id:
            unnamed.append(path)
        elif when is None:
            untimed.append(path)
        else:
            by_sensor.setdefault(meta.sensor_id, []).append(
                _Timed(path, labels[path], (when - _EPOCH).total_seconds()))
    for recs in by_sensor.values():
        recs.sort(key=lambda r: (r.seconds, str(r.path)))
    return by_sensor, unnamed, untimed, labels


def _read_table(path: Path, what: str, required: Sequence[str],
                expected: str) -> list[tuple[int, int, dict[str, str]]]:
    """``(row, line, cells)`` of each non-blank data row of a CSV file, its cells stripped
    and keyed by the lower-cased column names (every known column present, ``""`` when
    absent). :class:`InputError` for an unreadable file, a header lacking ``required``
    or both speed columns, a repeated column, or no data rows."""
    header: list[str] | None = None
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            end = 0
            for record in reader:
                start, end = end + 1, reader.line_num
                cells = [c.strip() for c in record]
                if not any(cells):
                    continue
                if header is None:
                    header = [c.lower() for c in cells]
                else:
                    rows.append((start, cells))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else \
            getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"{path}: cannot read the {what} file ({why})") from None
    if header is None:
        raise InputError(f"{path}: the {what} file is empty (expected a CSV with the "
                         f"header {expected})")
    named = [h for h in header if h]
    repeated = sorted({h for h in named if named.count(h) > 1})
    if repeated:
        raise InputError(f"{path}: column(s) {', '.join(repeated)} appear more than once")
    missing = [c for c in required if c not in header]
    if not any(c in header for c in SPEED_COLUMNS):
        missing.append(" or ".join(SPEED_COLUMNS))
    if missing:
        raise InputError(f"{path}: the {what} file's header lacks {', '.join(missing)} "
                         f"(found: {', '.join(named) or 'nothing'}; expected {expected})")
    if not rows:
        raise InputError(f"{path}: the {what} file has a header but no rows")
    known = dict.fromkeys((*required, *SPEED_COLUMNS, "diameter_mm", "wall_mm"), "")
    return [(row, line, {**known, **{h: v for h, v in zip(header, cells) if h}})
            for row, (line, cells) in enumerate(rows, start=1)]


def _span(cells: dict[str, str]) -> tuple[float | None, WaveSpeed | None, list[str]]:
    """A row's distance and resolved wave speed (``None`` where unusable) and its
    problems with them."""
    problems = []
    distance, why = _number(cells, "distance_m")
    if why or distance is None:
        problems.append(why or "distance_m is empty")
    elif distance <= 0:
        problems.append(f"distance must be positive, not {distance:g} m")
        distance = None
    given, why = _number(cells, "wave_speed_m_s")
    name = cells["material"]
    if why:
        return distance, None, [*problems, why]
    if given is None and not name:
        return distance, None, [*problems, "neither wave_speed_m_s nor material given"]
    sizes, wrong = [], []
    for column in ("diameter_mm", "wall_mm") if given is None else ():
        value, why = _number(cells, column)
        if value is not None and value <= 0:
            why = f"{column} must be positive, not {value:g}"
        wrong += [why] if why else []
        sizes.append(value)
    try:
        if given is None:
            find_material(name)  # an unknown name is said even when a size is wrong too
        if not wrong:
            return distance, resolve_speed(given, name or None, *sizes), problems
    except ConfigError as exc:
        wrong.insert(0, str(exc))
    return distance, None, problems + wrong


def _number(cells: dict[str, str], column: str) -> tuple[float | None, str]:
    """``(value, "")``; ``(None, "")`` when empty; ``(None, why)`` when not a number."""
    text = cells[column]
    if not text:
        return None, ""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        return None, f"{column} is not a number: {text!r}"
    return value, ""


def _secs(seconds: float) -> str:
    """``3,600``, ``60``, ``0.25``: seconds for a message."""
    return f"{seconds:,.3f}".rstrip("0").rstrip(".")


def _count(n: int, noun: str) -> str:  # "1 sensor", "2 sensors"
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _listing(items: Iterable[object]) -> str:
    """The first few items, comma-separated, then "and N more"."""
    items = [str(i) for i in items]
    more = len(items) - _LISTED
    return ", ".join(items[:_LISTED]) + (f" and {more} more" if more > 0 else "")
