"""The correlator's library entry: one pair, many pairs, and the wave speed from a hydrant.

* :func:`locate_pair`: two files, a span and a wave speed -> a :class:`PairResult` (the
  :class:`~.estimate.Location`, what was done to the audio, and the curves a plot needs).
* :func:`locate_jobs`: many :class:`~.pairing.PairJob` -> one row of
  :data:`LOCATION_COLUMNS` each, in the jobs' order. Worker processes decode and resample
  (the CPU's work); the main process correlates pairs of one length, rate and window
  together, ``batch`` at a time, on the chosen device. A bad job or an unreadable file is
  a row with status ``bad input`` and the reason, never a stop.
* :func:`calibrate_speed`: the wave speed that puts a source opened at a known position
  where the correlation says it is.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch

from ..config import LocateConfig
from ..errors import LeakhunterError
from ..runtime import safe_write
from ..runtime.log import progress_bar
from ..runtime.parallel import Workers, default_workers
from .correlation import window_count
from .detector import Timeline, describe, window_weights
from .estimate import BAD_INPUT, STATUSES, Curves, Location, locate_batch, window_samples
from .pair_audio import PairAudio, read_pair
from .pairing import PairJob
from .wave_speed import WaveSpeed, speed_from_known_source

log = logging.getLogger(__name__)

LOCATION_COLUMNS = ("a", "b", "distance_m", "wave_speed_m_s", "delay_s", "position_m",
                    "low_m", "high_m", "status", "peak", "coherence", "band_low_hz",
                    "band_high_hz", "delay_error_s", "speed_low_m_s", "speed_high_m_s",
                    "window_s", "seconds", "sample_rate", "reason", "notes", "speed_source", "plot")
Detector: TypeAlias = Mapping[str, "Timeline | str"]  # detector.timelines: path -> its timeline
BATCH = {"cpu": 16, "cuda": 256}  # pairs correlated at once; bounded by memory, not speed


@dataclass(frozen=True)
class PairResult:
    """One pair's location, its audio's facts and notes, and (when asked) its curves."""

    location: Location
    distance_m: float
    speed: WaveSpeed
    seconds: float
    rate: int
    notes: tuple[str, ...]
    curves: Curves | None = None

    def as_dict(self) -> dict[str, Any]:
        """Everything as plain JSON values: ``--out FILE.json``."""
        loc = self.location
        return {"status": loc.status, "reason": loc.reason, "position_m": loc.position_m,
                "low_m": loc.low_m, "high_m": loc.high_m, "distance_m": self.distance_m,
                "delay_s": loc.delay_s, "delay_error_s": loc.delay_error_s,
                "wave_speed_m_s": loc.wave_speed_m_s,
                "wave_speed_range_m_s": [loc.speed_low_m_s, loc.speed_high_m_s],
                "wave_speed_source": self.speed.source, "peak": loc.quality,
                "coherence": loc.coherence,
                "band_hz": list(loc.band_hz) if loc.band_hz else None,
                "window_s": loc.window_s, "seconds": self.seconds, "sample_rate": self.rate,
                "notes": list(self.notes)}


def locate_pair(a: str | Path, b: str | Path, distance_m: float, speed: WaveSpeed,
                cfg: LocateConfig, device: torch.device, offset_s: float = 0.0,
                curves: bool = False, detector: Detector | None = None) -> PairResult:
    """Locate the source heard by the recordings ``a`` and ``b``, ``distance_m`` apart;
    ``detector``: their :func:`~.detector.timelines`, to weight the windows by."""
    audio = read_pair(a, b, cfg.sample_rate, offset_s)
    return _locate_read([_Item(audio, distance_m, speed, str(a), str(b))], cfg, device,
                        curves, detector)[0]


def calibrate_speed(a: str | Path, b: str | Path, distance_m: float, source_m: float,
                    cfg: LocateConfig, device: torch.device,
                    guess: WaveSpeed) -> tuple[float, PairResult]:
    """The wave speed (m/s) that puts a source known to lie ``source_m`` from A where the
    measured delay says, and the correlation it came from. ``guess``: the speeds the window
    and the search must allow for (its ``low`` sizes them)."""
    result = locate_pair(a, b, distance_m, guess, cfg, device)
    if result.location.delay_s is None:
        raise LeakhunterError(f"no correlated source to calibrate on: "
                              f"{result.location.reason}")
    return speed_from_known_source(result.location.delay_s, distance_m, source_m), result


@dataclass(frozen=True)
class _Item:
    """A pair read and ready: its audio, span, speed and the paths it was read from."""

    audio: PairAudio
    distance_m: float
    speed: WaveSpeed
    a: str
    b: str


def _locate_read(items: Sequence[_Item], cfg: LocateConfig, device: torch.device,
                 curves: bool, detector: Detector | None = None) -> list[PairResult]:
    """Correlate pairs already read that share one length and rate (one batch)."""
    rate, samples = items[0].audio.rate, items[0].audio.a.shape[0]
    window = max(window_samples(i.distance_m, i.speed.low, rate, samples, cfg) for i in items)
    a = torch.stack([torch.from_numpy(i.audio.a) for i in items]).to(device)
    b = torch.stack([torch.from_numpy(i.audio.b) for i in items]).to(device)
    notes = [list(i.audio.notes) for i in items]
    weights = None
    if detector is not None:
        rows = [_weights(i, detector, window, samples, said) for i, said in zip(items, notes)]
        weights = torch.from_numpy(np.stack(rows)).to(device=device, dtype=a.dtype)
    locations, plots = locate_batch(a, b, rate, [i.distance_m for i in items],
                                    [i.speed for i in items], cfg, window, curves, weights)
    return [PairResult(loc, i.distance_m, i.speed, i.audio.seconds, rate, tuple(said),
                       plots[k] if plots else None)
            for k, (loc, i, said) in enumerate(zip(locations, items, notes))]


def _weights(item: _Item, detector: Detector, window: int, samples: int,
             notes: list[str]) -> np.ndarray:
    """One pair's window weights from the detector, its note added to ``notes``; equal
    weights (and a note saying why) when the detector could not judge a side."""
    count = window_count(samples, window)
    sides = {"A": detector.get(item.a, "not judged"), "B": detector.get(item.b, "not judged")}
    missing = [f"{side} ({what})" for side, what in sides.items() if isinstance(what, str)]
    if missing:
        notes.append(f"the detector could not judge {' and '.join(missing)}: windows "
                     f"weighted equally")
        return np.ones(count)
    ta, tb = sides["A"], sides["B"]
    assert isinstance(ta, Timeline) and isinstance(tb, Timeline)
    notes.append(describe({"A": float(ta.leak.mean()), "B": float(tb.leak.mean())}))
    return window_weights(ta, tb, item.audio.skipped_s, count, window, item.audio.rate)


# --- many pairs -----------------------------------------------------------------------------

def locate_jobs(jobs: Sequence[PairJob], cfg: LocateConfig, device: torch.device,
                plots: Path | None = None, detector: Detector | None = None
                ) -> list[dict[str, Any]]:
    """One row of :data:`LOCATION_COLUMNS` per job, in order. ``plots``: a folder to draw
    each correlated pair into (``pair0001.png`` for the first job ...; the row's ``plot``
    column names the file); ``detector``: the recordings' :func:`~.detector.timelines`."""
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    pending: dict[tuple[int, int, int], list[tuple[int, PairAudio]]] = {}
    batch = BATCH["cuda" if device.type == "cuda" else "cpu"]
    usable = [(i, j) for i, j in enumerate(jobs) if not j.problem]
    for i, j in enumerate(jobs):
        if j.problem:
            rows[i] = _bad_row(j, j.problem)
    workers = default_workers() if cfg.workers == 0 else cfg.workers
    tasks = ((j.a, j.b, cfg.sample_rate, j.offset_s or 0.0) for _, j in usable)
    with Workers(min(workers, max(len(usable), 1))) as pool, \
            progress_bar(total=len(usable), desc="locating", unit="pair") as bar:
        for (i, job), audio in zip(usable, pool.map(_read, tasks)):
            bar.update(1)
            if isinstance(audio, str):
                rows[i] = _bad_row(job, audio)
                continue
            try:
                window = window_samples(job.distance_m, job.speed.low, audio.rate,
                                        audio.a.shape[0], cfg)
            except LeakhunterError as exc:
                rows[i] = _bad_row(job, str(exc), audio)
                continue
            key = (audio.rate, audio.a.shape[0], window)
            pending.setdefault(key, []).append((i, audio))
            if len(pending[key]) >= batch:
                _flush(pending.pop(key), jobs, rows, cfg, device, plots, detector)
        for group in pending.values():
            _flush(group, jobs, rows, cfg, device, plots, detector)
    return [r for r in rows if r is not None]


def _read(a: Path, b: Path, rate: int | None, offset_s: float) -> PairAudio | str:
    """In a worker: the pair read, or why it cannot be (a string travels cheaply)."""
    try:
        return read_pair(a, b, rate, offset_s)
    except LeakhunterError as exc:
        return str(exc)


def _flush(group: list[tuple[int, PairAudio]], jobs: Sequence[PairJob],
           rows: list[dict[str, Any] | None], cfg: LocateConfig, device: torch.device,
           plots: Path | None, detector: Detector | None) -> None:
    items = [_Item(audio, jobs[i].distance_m, jobs[i].speed, str(jobs[i].a), str(jobs[i].b))
             for i, audio in group]
    results = _locate_read(items, cfg, device, plots is not None, detector)
    for (i, _), result in zip(group, results):
        rows[i] = _row(jobs[i], result)
        if plots is not None:
            from .plot import plot_pair  # matplotlib: only when drawing

            path = plot_pair(result, plots / f"pair{i + 1:04d}.png",
                             title=f"{rows[i]['a']} ~ {rows[i]['b']}")
            rows[i]["plot"] = str(path)


def _row(job: PairJob, r: PairResult) -> dict[str, Any]:
    loc = r.location
    return {"a": job.a_label or str(job.a), "b": job.b_label or str(job.b),
            "distance_m": job.distance_m, "wave_speed_m_s": _num(loc.wave_speed_m_s, 1),
            "delay_s": _num(loc.delay_s, 6), "position_m": _num(loc.position_m, 2),
            "low_m": _num(loc.low_m, 2), "high_m": _num(loc.high_m, 2),
            "status": loc.status, "peak": _num(loc.quality, 1),
            "coherence": _num(loc.coherence, 3),
            "band_low_hz": _num(loc.band_hz[0], 1) if loc.band_hz else "",
            "band_high_hz": _num(loc.band_hz[1], 1) if loc.band_hz else "",
            "delay_error_s": _num(loc.delay_error_s, 6),
            "speed_low_m_s": _num(loc.speed_low_m_s, 1),
            "speed_high_m_s": _num(loc.speed_high_m_s, 1),
            "window_s": _num(loc.window_s, 4), "seconds": _num(r.seconds, 2),
            "sample_rate": r.rate, "reason": loc.reason, "notes": "; ".join(r.notes),
            "speed_source": r.speed.source, "plot": ""}


def _bad_row(job: PairJob, why: str, audio: PairAudio | None = None) -> dict[str, Any]:
    row = dict.fromkeys(LOCATION_COLUMNS, "")
    row.update(a=job.a_label or str(job.a or ""), b=job.b_label or str(job.b or ""),
               distance_m="" if job.distance_m is None else job.distance_m,
               status=BAD_INPUT, reason=why)
    if job.speed is not None:
        row.update(wave_speed_m_s=_num(job.speed.speed, 1), speed_source=job.speed.source)
    if audio is not None:
        row.update(seconds=_num(audio.seconds, 2), sample_rate=audio.rate,
                   notes="; ".join(audio.notes))
    return row


def _num(value: float | None, digits: int) -> float | str:
    return "" if value is None else round(float(value), digits)


def write_locations(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """``locations.csv``: the rows, whole or not at all."""
    path = Path(path)
    with safe_write.writing(path, f"writing {path.name}") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOCATION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def status_counts(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[str, int]]:
    """``(status, how many)`` in the order of :data:`~.estimate.STATUSES`."""
    for status in STATUSES:
        n = sum(r["status"] == status for r in rows)
        if n:
            yield status, n
