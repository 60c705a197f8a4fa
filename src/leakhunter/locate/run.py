"""The correlator's library entry: one pair, many pairs, and the wave speed from a hydrant.

* :func:`locate_pair`: two files, a span and a wave speed -> a :class:`PairResult` (the
  :class:`~.estimate.Location`, what was done to the audio, and the curves a plot needs).
* :func:`locate_jobs`: many :class:`~.pairing.PairJob` -> one row of
  :data:`LOCATION_COLUMNS` each, in the jobs' order. Pairs of one length, rate and window
  are correlated together, :data:`BATCH` at a time: on the CPU inside the worker
  processes that read them, on CUDA in this process while the workers read. A bad job or
  an unreadable file is a row with status ``bad input`` and the reason, never a stop.
* :func:`calibrate_speed`: the wave speed (a :class:`Calibration`) that puts a source
  opened at a known position where the correlation says it is.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch

from ..config import LocateConfig
from ..errors import LeakhunterError
from ..recordings.audio import parse_name
from ..runtime import safe_write
from ..runtime.log import progress_bar
from ..runtime.parallel import Workers, default_workers
from .correlation import stack_without_lines, window_count
from .detector import Timeline, describe, window_weights
from .estimate import BAD_INPUT, STATUSES, Curves, Location, locate_batch, window_samples
from .pair_audio import PairAudio, read_pair
from .pairing import PairJob
from .wave_speed import WaveSpeed, speed_from_known_source

log = logging.getLogger(__name__)

LOCATION_COLUMNS = ("a", "b", "distance_m", "wave_speed_m_s", "delay_s", "position_m",
                    "low_m", "high_m", "status", "peak", "coherence", "band_low_hz",
                    "band_high_hz", "delay_error_s", "speed_low_m_s", "speed_high_m_s",
                    "window_s", "seconds", "sample_rate", "reason", "notes", "speed_source",
                    "plot")
Detector: TypeAlias = Mapping[str, "Timeline | str"]  # detector.timelines: path -> its timeline
# pairs correlated at once: on the CPU 4 (measured: larger batches touch more fresh memory
# and spill out of the cache for no gain), on a GPU as many as its memory comfortably holds
BATCH = {"cpu": 4, "cuda": 256}
# a GPU batch's samples per side at most: 256 pairs of 20 s at 8,192 Hz (a few GB at its
# peak); longer recordings go fewer to a batch
GPU_BATCH_SAMPLES = 256 * 20 * 8192


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


@dataclass(frozen=True)
class Calibration:
    """A wave speed solved from a source at a known position: the speed (m/s), the speeds
    the delay's interval allows (``high`` is inf when that interval reaches a delay of 0),
    and the correlation it came from (its location's delay is the highest peak's)."""

    speed_m_s: float
    low_m_s: float
    high_m_s: float
    source_m: float
    result: PairResult

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values: ``--calibrate-at X --out FILE.json``: the correlation's figures
        (:meth:`PairResult.as_dict`) without those of a position at the guessed speed."""
        high = self.high_m_s if math.isfinite(self.high_m_s) else None
        measured = {k: v for k, v in self.result.as_dict().items() if k not in POSITIONED}
        return {"wave_speed_m_s": self.speed_m_s, "wave_speed_range_m_s": [self.low_m_s, high],
                "source_m": self.source_m, **measured}


# what a calibration leaves out of a pair's figures: they judge the speed guessed, not found
POSITIONED = ("status", "reason", "position_m", "low_m", "high_m", "wave_speed_m_s",
              "wave_speed_range_m_s", "wave_speed_source")


def calibrate_speed(a: str | Path, b: str | Path, distance_m: float, source_m: float,
                    cfg: LocateConfig, device: torch.device, guess: WaveSpeed) -> Calibration:
    """The wave speed that puts a source known to lie ``source_m`` from A where the
    measured delay says. ``guess``: the speeds the window and the search must allow for
    (its ``low`` sizes them). The delay is the highest peak's: a hydrant near a sensor
    is where the edge test would otherwise look for a weaker peak between the sensors."""
    audio = read_pair(a, b, cfg.sample_rate)
    result = _locate_read([_Item(audio, distance_m, guess, str(a), str(b))], cfg, device,
                          False, strongest=True)[0]
    loc = result.location
    if loc.delay_s is None or loc.delay_error_s is None:
        raise LeakhunterError(f"no correlated source to calibrate on: {loc.reason}")
    speed = speed_from_known_source(loc.delay_s, distance_m, source_m)
    offset, tau, err = abs(2 * source_m - distance_m), abs(loc.delay_s), loc.delay_error_s
    return Calibration(speed, offset / (tau + err), offset / (tau - err) if tau > err
                       else math.inf, source_m, result)


@dataclass(frozen=True)
class _Item:
    """A pair read and ready: its audio, span, speed and the paths it was read from."""

    audio: PairAudio
    distance_m: float
    speed: WaveSpeed
    a: str
    b: str


def _locate_read(items: Sequence[_Item], cfg: LocateConfig, device: torch.device,
                 curves: bool, detector: Detector | None = None,
                 strongest: bool = False) -> list[PairResult]:
    """Correlate pairs already read that share one length and rate (one batch);
    ``strongest`` as :func:`~.estimate.locate_batch` takes it."""
    rate, samples = items[0].audio.rate, items[0].audio.a.shape[0]
    window = max(window_samples(i.distance_m, i.speed.low, rate, samples, cfg) for i in items)
    # on the CPU each recording is written once, its line removed on the way; a GPU gets
    # the batch as read and removes the lines itself
    here = device.type == "cpu"
    batch = stack_without_lines if here else torch.stack
    a = to_device(batch([torch.from_numpy(i.audio.a) for i in items]), device)
    b = to_device(batch([torch.from_numpy(i.audio.b) for i in items]), device)
    notes = [list(i.audio.notes) for i in items]
    weights = None
    if detector is not None:
        rows = [_weights(i, detector, window, samples, said) for i, said in zip(items, notes)]
        weights = to_device(torch.from_numpy(np.stack(rows)).to(a.dtype), device)
    locations, plots = locate_batch(a, b, rate, [i.distance_m for i in items],
                                    [i.speed for i in items], cfg, window, curves, weights,
                                    lines_removed=here, strongest=strongest)
    return [PairResult(loc, i.distance_m, i.speed, i.audio.seconds, rate, tuple(said),
                       plots[k] if plots else None)
            for k, (loc, i, said) in enumerate(zip(locations, items, notes))]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``: the one place pairs leave the host (a test with CUDA simulated
    keeps them on the CPU here and runs the rest of the CUDA path)."""
    return t.to(device, non_blocking=device.type == "cuda")


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
    column names the file); ``detector``: the recordings' :func:`~.detector.timelines`.

    On the CPU each worker process reads *and* correlates its share of the pairs with one
    thread (a correlating main process competing with decoding workers for the same cores
    ran several times slower); on CUDA the workers read and this process correlates many
    pairs per GPU call."""
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    usable = [(i, j) for i, j in enumerate(jobs) if not j.problem]
    for i, j in enumerate(jobs):
        if j.problem:
            rows[i] = _bad_row(j, j.problem)
    workers = min(default_workers() if cfg.workers == 0 else cfg.workers, max(len(usable), 1))
    with Workers(workers) as pool, \
            progress_bar(total=len(usable), desc="locating", unit="pair") as bar:
        if device.type == "cuda":
            batcher = _Batcher(dict(usable), cfg, device, plots, detector, BATCH["cuda"])
            reads = ((j.a, j.b, cfg.sample_rate, j.offset_s or 0.0) for _, j in usable)
            for (i, _), audio in zip(usable, pool.map(_read, reads)):
                bar.update(1)
                batcher.add(i, audio)
            done = batcher.finish()
        else:
            # pairs of one window correlate together: chunks of similar spans fill batches
            # (a chunk of mixed spans splits into many small batches, each paying its own
            # per-call overhead); the longest spans first, so the pool ends on short tasks
            ordered = sorted(usable, key=lambda ij: _largest_delay(ij[1]), reverse=True)
            chunks = [ordered[k:k + TASK_PAIRS] for k in range(0, len(ordered), TASK_PAIRS)]
            tasks = ((chunk, cfg, plots, _detector_for(chunk, detector)) for chunk in chunks)
            done = {}
            for chunk, rows_done in zip(chunks, pool.map(_read_and_locate, tasks)):
                bar.update(len(chunk))
                done.update(rows_done)
    for i, row in done.items():
        rows[i] = row
    return [r for r in rows if r is not None]


TASK_PAIRS = 8  # pairs a CPU worker reads and correlates at once


def _largest_delay(job: PairJob) -> float:
    """The span over the slowest wave speed (s): what sets a pair's window."""
    assert job.distance_m is not None and job.speed is not None  # a usable job has both
    return job.distance_m / job.speed.low


def _detector_for(chunk: list[tuple[int, PairJob]],
                  detector: Detector | None) -> Detector | None:
    """The part of the detector's timelines a chunk of pairs needs (what travels to it)."""
    if detector is None:
        return None
    paths = {str(p) for _, j in chunk for p in (j.a, j.b)}
    return {p: t for p, t in detector.items() if p in paths}


def _read(a: Path, b: Path, rate: int | None, offset_s: float) -> PairAudio | str:
    """The pair read, or why it cannot be (a string travels cheaply)."""
    try:
        return read_pair(a, b, rate, offset_s)
    except LeakhunterError as exc:
        return str(exc)


def _read_and_locate(chunk: list[tuple[int, PairJob]], cfg: LocateConfig, plots: Path | None,
                     detector: Detector | None) -> dict[int, dict[str, Any]]:
    """In a CPU worker: read and correlate a chunk of pairs; their rows by job index."""
    batcher = _Batcher(dict(chunk), cfg, torch.device("cpu"), plots, detector,
                       BATCH["cpu"])
    for i, job in chunk:
        batcher.add(i, _read(job.a, job.b, cfg.sample_rate, job.offset_s or 0.0))
    return batcher.finish()


class _Batcher:
    """Pairs read, gathered into batches of one length, rate and window, correlated when a
    batch is full or at :meth:`finish`; the finished rows by job index."""

    def __init__(self, jobs: dict[int, PairJob], cfg: LocateConfig, device: torch.device,
                 plots: Path | None, detector: Detector | None, batch: int):
        self.jobs, self.cfg, self.device = jobs, cfg, device
        self.plots, self.detector, self.batch = plots, detector, batch
        self.rows: dict[int, dict[str, Any]] = {}
        self.pending: dict[tuple[int, int, int], list[tuple[int, PairAudio]]] = {}

    def add(self, i: int, audio: PairAudio | str) -> None:
        job = self.jobs[i]
        if isinstance(audio, str):
            self.rows[i] = _bad_row(job, audio)
            return
        try:
            window = window_samples(job.distance_m, job.speed.low, audio.rate,
                                    audio.a.shape[0], self.cfg)
        except LeakhunterError as exc:
            self.rows[i] = _bad_row(job, str(exc), audio)
            return
        key = (audio.rate, audio.a.shape[0], window)
        self.pending.setdefault(key, []).append((i, audio))
        batch = self.batch
        if self.device.type != "cpu":  # long recordings: fewer pairs, one memory budget
            batch = max(1, min(batch, GPU_BATCH_SAMPLES // audio.a.shape[0]))
        if len(self.pending[key]) >= batch:
            self._flush(self.pending.pop(key))

    def finish(self) -> dict[int, dict[str, Any]]:
        for group in self.pending.values():
            self._flush(group)
        self.pending = {}
        return self.rows

    def _flush(self, group: list[tuple[int, PairAudio]]) -> None:
        jobs = self.jobs
        items = [_Item(audio, jobs[i].distance_m, jobs[i].speed, str(jobs[i].a),
                       str(jobs[i].b)) for i, audio in group]
        results = _locate_read(items, self.cfg, self.device, self.plots is not None,
                               self.detector)
        for (i, _), result in zip(group, results):
            row = self.rows[i] = _row(jobs[i], result)
            if self.plots is not None:
                from .plot import plot_pair  # matplotlib: only when drawing

                row["plot"] = str(plot_pair(result, self.plots / f"pair{i + 1:04d}.png",
                                            title=_pair_title(jobs[i])))


def _pair_title(job: PairJob) -> str:
    """``A17 ~ B22``: a pair's sensors (from the layout, or its files' names), else its
    files' names without folders: what a plot's title has room for."""
    a, b = ((sensor or parse_name(path).sensor_id or Path(str(path)).stem)
            for sensor, path in ((job.sensor_a, job.a), (job.sensor_b, job.b)))
    return f"{a} ~ {b}"


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
