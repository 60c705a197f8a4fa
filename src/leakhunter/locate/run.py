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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import LocateConfig
from ..errors import LeakhunterError
from ..runtime import safe_write
from ..runtime.log import progress_bar
from ..runtime.parallel import Workers, default_workers
from .estimate import BAD_INPUT, STATUSES, Curves, Location, locate_batch, window_samples
from .pair_audio import PairAudio, read_pair
from .pairing import PairJob
from .wave_speed import WaveSpeed, speed_from_known_source

log = logging.getLogger(__name__)

LOCATION_COLUMNS = ("a", "b", "distance_m", "wave_speed_m_s", "delay_s", "position_m",
                    "low_m", "high_m", "status", "peak", "coherence", "band_low_hz",
                    "band_high_hz", "delay_error_s", "speed_low_m_s", "speed_high_m_s",
                    "window_s", "seconds", "sample_rate", "reason", "notes", "speed_source", "plot")
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
                curves: bool = False) -> PairResult:
    """Locate the source heard by the recordings ``a`` and ``b``, ``distance_m`` apart."""
    audio = read_pair(a, b, cfg.sample_rate, offset_s)
    return _locate_read([(audio, distance_m, speed)], cfg, device, curves)[0]


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


def _locate_read(items: Sequence[tuple[PairAudio, float, WaveSpeed]], cfg: LocateConfig,
                 device: torch.device, curves: bool) -> list[PairResult]:
    """Correlate pairs already read that share one length and rate (one batch)."""
    audio0 = items[0][0]
    window = max(window_samples(d, v.low, audio0.rate, audio0.a.shape[0], cfg)
                 for _, d, v in items)
    a = torch.stack([torch.from_numpy(p.a) for p, _, _ in items]).to(device)
    b = torch.stack([torch.from_numpy(p.b) for p, _, _ in items]).to(device)
    locations, plots = locate_batch(a, b, audio0.rate, [d for _, d, _ in items],
                                    [v for _, _, v in items], cfg, window, curves)
    return [PairResult(loc, d, v, p.seconds, p.rate, p.notes,
                       plots[i] if plots else None)
            for i, (loc, (p, d, v)) in enumerate(zip(locations, items))]


# --- many pairs -----------------------------------------------------------------------------

def locate_jobs(jobs: Sequence[PairJob], cfg: LocateConfig, device: torch.device,
                plots: Path | None = None) -> list[dict[str, Any]]:
    """One row of :data:`LOCATION_COLUMNS` per job, in order. ``plots``: a folder to draw
    each correlated pair into (``pair0001.png`` for the first job ...; the row's ``plot``
    column names the file)."""
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
                _flush(pending.pop(key), jobs, rows, cfg, device, plots)
        for group in pending.values():
            _flush(group, jobs, rows, cfg, device, plots)
    return [r for r in rows if r is not None]


def _read(a: Path, b: Path, rate: int | None, offset_s: float) -> PairAudio | str:
    """In a worker: the pair read, or why it cannot be (a string travels cheaply)."""
    try:
        return read_pair(a, b, rate, offset_s)
    except LeakhunterError as exc:
        return str(exc)


def _flush(group: list[tuple[int, PairAudio]], jobs: Sequence[PairJob],
           rows: list[dict[str, Any] | None], cfg: LocateConfig, device: torch.device,
           plots: Path | None) -> None:
    items = [(audio, jobs[i].distance_m, jobs[i].speed) for i, audio in group]
    results = _locate_read(items, cfg, device, curves=plots is not None)
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
