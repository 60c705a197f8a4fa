"""Synthetic labelled hydrophone recordings, so the pipeline can be demonstrated offline.

:func:`synthesize` writes ``config.count`` recordings per label as
``out_dir/<LABEL>/<sensor_id>~<recording_id>~<timestamp>~<gain_db>.wav`` (mono, 16-bit PCM,
``config.sample_rate`` Hz, ``config.duration_s`` s). Every recording is a common background
(pink-ish pipe noise, sensor self-noise, mains and pump hum depending on the sensor) plus a
label's *signature* at a signal-to-background ratio set by ``config.difficulty``, plus, with
probability ``config.interference``, 1-4 non-stationary bursts (speech, knocks, traffic, frog
chirps). Levels are in "background units": the background has RMS 1 before the file is
peak-normalised. Only numpy is used: noise is shaped in the frequency domain, tones are sines.

Everything depends only on the config: each recording draws from its own generator seeded by
``(seed, label, index)``, each sensor from ``(seed, label, sensor number)``.
"""

from __future__ import annotations

import json
import logging
import shutil
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile as sf

from ...config import SynthConfig, to_dict
from ...errors import ConfigError, InputError
from ...runtime import safe_write
from ...runtime.log import progress_bar
from .sites import get_site
from .sounds import add_interference, db, highpass, lowpass, resonance, shaped_noise, smooth, tones

log = logging.getLogger(__name__)

RECIPES = ("leak", "crack", "noleak", "normal", "background", "mixed")
_NAMED_RECIPES = {"LEAK": "leak", "CRACK": "crack", "NOLEAK": "noleak", "NORMAL": "normal",
                  "BACKGROUND": "background", "UNCLASSIFIED": "mixed"}
_TAG_SENSOR, _TAG_META, _TAG_SIGNAL, _TAG_LABEL = 1, 2, 3, 4  # keep the seed streams apart
_EPOCH = datetime(2024, 1, 1)
# what synth last wrote into a folder: its settings and label folders, so that --overwrite
# with other labels clears those too (build would read stale ones as classes)
LABELS_FILE = "synth.json"
_OUT_OF_WATER_GAIN_DB = 1


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`synthesize` wrote. ``sensors`` maps each label to its sensor ids."""

    out_dir: Path
    files: int
    per_label: dict[str, int]
    sensors: dict[str, list[str]]
    out_of_water: int
    with_interference: int
    total_seconds: float


@dataclass(frozen=True)
class _Sensor:
    """One sensor's fixed surroundings: the pipe it sits on and the hum it hears."""

    sensor_id: str
    gain_db: int  # typical gain; recordings vary by a couple of dB around it
    tilt: float  # background PSD ~ 1/f**tilt
    hiss_db: float  # self-noise re background
    band: tuple[float, float]  # pipe pass band for leak noise, Hz
    resonances: tuple[tuple[float, float, float], ...]  # (centre Hz, bandwidth Hz, weight)
    mains_hz: float  # 50 or 60; 0 when no mains hum reaches this sensor
    mains_db: float
    pump_hz: float  # pump rotation frequency
    pump_blades: int
    pump_db: float | None  # pump hum heard in every recording at this level, or None
    snr_offset_db: float  # distance to the source: some sensors hear it better
    first_day: int
    interval_days: int


@dataclass(frozen=True)
class Plan:
    """One file to write: its name fields and how its signal is made."""

    label: str
    recipe: str
    index: int
    sensor: _Sensor
    recording_id: str
    timestamp: str
    gain_db: int
    out_of_water: bool
    interference: bool

    @property
    def name(self) -> str:
        return f"{self.sensor.sensor_id}~{self.recording_id}~{self.timestamp}~{self.gain_db}.wav"


def recipe_for(label: str) -> str:
    """The recipe (one of :data:`RECIPES`) a label name gets, deterministically.

    Known names map directly; otherwise a name containing CRACK is a crack, one containing
    LEAK (unless negated by a NO/NON/NOT prefix) a leak, and anything else one of the no-leak
    recipes chosen by a stable hash of the name.
    """
    name = label.upper()
    if name in _NAMED_RECIPES:
        return _NAMED_RECIPES[name]
    if "CRACK" in name:
        return "crack"
    if "LEAK" in name and not name.startswith("NO"):
        return "leak"
    return ("noleak", "normal", "background")[zlib.crc32(name.encode()) % 3]


def snr_db(difficulty: float) -> float:
    """Signature-to-background level (dB, RMS) at a difficulty in [0, 1], before the
    per-sensor (+-5 dB) and per-recording (sd 4 dB) spread. Calibrated so that a small CNN
    on 0.25 s log-mel segments, voted per file and tested on unseen sensors, scores F1 ~1 at
    0, ~0.95 at 0.5, near chance at 1 (a linear model on mean spectra: 1, ~0.99, ~0.5)."""
    return 14.0 - 34.0 * difficulty ** 2  # quadratic: most of the useful range is above 0.5


def synthesize(out_dir: str | Path, config: SynthConfig = SynthConfig(), *,  # noqa: B008
               overwrite: bool = False) -> SynthSummary:
    """Write the synthetic data set described by ``config`` into ``out_dir``.

    Raises :class:`InputError` if ``out_dir`` is a file, or exists and is not empty while
    ``overwrite`` is false; with ``overwrite``, only the label folders about to be written,
    and those an earlier synth wrote there (:data:`LABELS_FILE`), are removed first.
    :class:`ConfigError` if a label cannot be a folder name. Each file is written under a
    temporary name and renamed, so an interrupted run leaves no partial WAV."""
    out_dir = Path(out_dir)
    get_site(config.site)  # an unknown site fails before anything is written
    for label in config.labels:
        if not label or label in (".", "..") or any(c in label for c in "/\\~\0"):
            raise ConfigError(f"label {label!r} cannot be used as a folder name")
    earlier = _labels_written(out_dir) if overwrite else []
    prepare_output(out_dir, [*config.labels, *(e for e in earlier if e not in config.labels)],
                   overwrite)
    safe_write.write_json(out_dir / LABELS_FILE, {"labels": list(config.labels),
                                                  "config": to_dict(config)})
    plans = plan_files(config)
    for label in config.labels:
        (out_dir / label).mkdir(parents=True, exist_ok=True)
    for plan in progress_bar(plans, total=len(plans), desc="synth", unit="file"):
        _write(out_dir / plan.label / plan.name, render(plan, config), plan.gain_db,
               config.sample_rate)
    summary = SynthSummary(
        out_dir=out_dir, files=len(plans),
        per_label={lab: sum(p.label == lab for p in plans) for lab in config.labels},
        sensors={lab: sorted({p.sensor.sensor_id for p in plans if p.label == lab})
                 for lab in config.labels},
        out_of_water=sum(p.out_of_water for p in plans),
        with_interference=sum(p.interference for p in plans),
        total_seconds=len(plans) * _n_samples(config) / config.sample_rate)
    log.debug("wrote %d synthetic recordings (%s) to %s", summary.files,
             ", ".join(f"{k}: {v}" for k, v in summary.per_label.items()), out_dir)
    return summary


# --- planning: names, sensors, gains, timestamps -----------------------------------------

def prepare_output(out_dir: Path, folders: Iterable[str], overwrite: bool) -> None:
    """Make ``out_dir`` ready for a generator that writes the sub-folders ``folders``: an
    empty or missing folder is fine; a non-empty one is refused unless ``overwrite``, and
    then only those sub-folders are cleared (anything else there is left alone). Raises
    :class:`InputError` for a file where the folder or a sub-folder should be."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a folder")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise InputError(f"{out_dir} already exists and is not empty; choose another folder, "
                         "remove it or pass --overwrite")
    for name in folders:
        target = out_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            raise InputError(f"{target} is in the way of a folder to write and is not one")


def _labels_written(out_dir: Path) -> list[str]:
    """The label folders an earlier :func:`synthesize` wrote into ``out_dir`` (none when it
    left no readable :data:`LABELS_FILE`); plain names only, never a path elsewhere."""
    try:
        labels = json.loads((out_dir / LABELS_FILE).read_text(encoding="utf-8"))["labels"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [lab for lab in labels if isinstance(lab, str) and lab not in ("", ".", "..")
            and Path(lab).name == lab]


def _rng(config: SynthConfig, *key: int | str) -> np.random.Generator:
    """A generator for one stream; label names enter as CRC-32 (stable, unlike hash()).
    Another site than A draws from streams of its own (site A's are those of before)."""
    if config.site.upper() != "A":
        key = (f"site:{config.site.upper()}", *key)
    ints = [zlib.crc32(k.encode()) if isinstance(k, str) else k for k in key]
    return np.random.default_rng(np.random.SeedSequence([config.seed, *ints]))


def _n_samples(config: SynthConfig) -> int:
    return round(config.duration_s * config.sample_rate)


def _make_sensor(config: SynthConfig, label: str, j: int, sensor_id: str) -> _Sensor:
    site = get_site(config.site)
    rng = _rng(config, label, _TAG_SENSOR, j)
    nyq = config.sample_rate / 2
    lo, hi = rng.uniform(*site.band_lo), min(rng.uniform(*site.band_hi), 0.75 * nyq)
    res = tuple((float(rng.uniform(max(1.3 * lo, site.resonance_floor), hi)),
                 float(rng.uniform(*site.resonance_bandwidth)),
                 float(rng.uniform(0.3, 1.0))) for _ in range(rng.integers(2, 5)))
    return _Sensor(
        sensor_id=sensor_id, gain_db=int(rng.integers(6, 31)), tilt=rng.uniform(*site.tilt),
        hiss_db=rng.uniform(*site.hiss_db), band=(lo, hi), resonances=res,
        mains_hz=float(rng.choice([50.0, 60.0])) if rng.random() < site.mains_share else 0.0,
        mains_db=rng.uniform(*site.mains_db), pump_hz=rng.uniform(18, 50),
        pump_blades=int(rng.integers(3, 8)),
        pump_db=float(rng.uniform(-18, -6)) if rng.random() < site.pump_share else None,
        snr_offset_db=rng.uniform(-5, 5), first_day=int(rng.integers(0, 90)),
        interval_days=int(rng.integers(1, 4)))


def plan_files(config: SynthConfig) -> list[Plan]:
    """Every file's name and settings, in label order. Sensor and recording numbers are
    shuffled across labels so that an id says nothing about its label."""
    n_labels, spl = len(config.labels), config.sensors_per_label
    site = get_site(config.site)
    shuffle = _rng(config, _TAG_LABEL)
    sensor_numbers = site.sensor_base + shuffle.permutation(n_labels * spl)
    recording_numbers = site.recording_base + shuffle.permutation(n_labels * config.count)
    interference_p = min(1.0, config.interference * site.interference_scale)
    plans, seen = [], set()
    for li, label in enumerate(config.labels):
        sensors = [_make_sensor(config, label, j, f"S{sensor_numbers[li * spl + j]:04d}")
                   for j in range(spl)]
        dry = set(_rng(config, label, _TAG_LABEL).choice(config.count, config.out_of_water,
                                                      replace=False).tolist())
        for i in range(config.count):
            rng = _rng(config, label, _TAG_META, i)
            sensor = sensors[i % spl]  # round-robin: the k-th visit to this sensor
            day = sensor.first_day + (i // spl) * sensor.interval_days
            # leak surveys record at night, when consumption and traffic are lowest
            when = _EPOCH + timedelta(days=day, seconds=int(rng.integers(0, 5 * 3600)))
            while when in seen:  # distinct timestamps, resolved in a fixed order
                when += timedelta(seconds=1)
            seen.add(when)
            gain = max(2, sensor.gain_db + int(rng.integers(-2, 3)))
            interference = bool(rng.random() < interference_p)
            out = i in dry
            plans.append(Plan(
                label=label, recipe=recipe_for(label), index=i, sensor=sensor,
                recording_id=f"R{recording_numbers[li * config.count + i]:06d}",
                timestamp=when.strftime("%Y%m%dT%H%M%S"),
                gain_db=_OUT_OF_WATER_GAIN_DB if out else gain,
                out_of_water=out, interference=interference and not out))
    return plans


# --- signal ingredients -------------------------------------------------------------------
def _leak_noise(rng, n, sr, s: _Sensor) -> np.ndarray:
    """Turbulent jet noise through the pipe: band-passed, a few per-sensor resonances
    (jittered by a few percent per recording), slowly amplitude-modulated."""
    res = [(c * rng.uniform(0.97, 1.03), b, w) for c, b, w in s.resonances]

    def shape(f):
        peaks = sum(w * resonance(f, c, b) for c, b, w in res)
        return highpass(f, s.band[0]) * lowpass(f, s.band[1], 3) * (1.0 + peaks)
    envelope = np.exp(rng.uniform(0.15, 0.4) * smooth(rng, n, sr, 0.4))
    x = shaped_noise(rng, n, sr, shape) * envelope
    return x / np.sqrt(np.mean(x ** 2))


def _crack_noise(rng, n, sr, s: _Sensor) -> np.ndarray:
    """Hiss through a narrow crack: one or two narrow high resonances over a weak
    high-passed floor; steadier than a leak."""
    top = 0.85 * sr / 2
    res = [(rng.uniform(min(900, 0.6 * top), top), rng.uniform(20, 90))
           for _ in range(rng.integers(1, 3))]

    def shape(f):
        return 0.15 * highpass(f, min(800, 0.5 * top), 3) + sum(
            resonance(f, c, b) for c, b in res)
    return shaped_noise(rng, n, sr, shape) * np.exp(0.1 * smooth(rng, n, sr, 0.3))


def _flow_noise(rng, n, sr) -> np.ndarray:
    """Ordinary flow past the sensor: low, pinker than a leak (most energy below ~300 Hz)."""
    fc, slope = rng.uniform(80, 300), rng.uniform(0.5, 1.0)
    return shaped_noise(rng, n, sr, lambda f: lowpass(f, fc) * (f + 10) ** -slope)


def _consumption(rng, n, sr) -> np.ndarray:
    """Broadband draw-off noise switched on for one episode of 20-60 % of the recording."""
    lo, hi = rng.uniform(100, 250), rng.uniform(800, 1500)
    x = shaped_noise(rng, n, sr, lambda f: highpass(f, lo) * lowpass(f, hi, 3))
    length, ramp = n * rng.uniform(0.2, 0.6), 0.5 * sr  # samples; 0.5 s fade in and out
    start = rng.uniform(0, n - length)
    t = np.arange(n)
    on = np.clip(np.minimum(t - start, start + length - t) / ramp + 0.5, 0.0, 1.0)
    return x * (0.5 - 0.5 * np.cos(np.pi * on))


def _pump_hum(rng, n, sr, s: _Sensor) -> np.ndarray:
    """Pump rotation harmonics plus the blade-pass tone; unit RMS."""
    amps = rng.uniform(0.2, 1.0, 8) / np.arange(1, 9)
    amps[s.pump_blades - 1] += rng.uniform(0.5, 1.5)  # blade-pass frequency
    x = tones(rng, n, sr, s.pump_hz * rng.uniform(0.99, 1.01), amps)
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def _background(rng, n, sr, s: _Sensor) -> np.ndarray:
    """What every in-water recording of this sensor hears: pink-ish pipe noise faintly
    coloured by the pipe's resonances, self-noise, mains and (near pumps) pump hum. RMS 1."""
    def pink(f):
        return (f + 5) ** (-s.tilt / 2) * (1 + 0.3 * sum(
            resonance(f, c, b) for c, b, _ in s.resonances))
    x = shaped_noise(rng, n, sr, pink) + db(s.hiss_db) * rng.standard_normal(n)
    if s.mains_hz:
        x += db(s.mains_db) * tones(rng, n, sr, s.mains_hz, [1.0, 0.3, 0.6, 0.15, 0.35])
    if s.pump_db is not None:
        x += db(s.pump_db) * _pump_hum(rng, n, sr, s)
    return x / np.sqrt(np.mean(x ** 2))


def _signature(recipe, rng, n, sr, s: _Sensor, difficulty) -> np.ndarray:
    """A label's own sound at unit level (RMS ~1); :func:`render` sets its level."""
    if recipe == "leak":
        return _leak_noise(rng, n, sr, s)
    if recipe == "crack":
        return _crack_noise(rng, n, sr, s)
    if recipe == "normal":
        return _flow_noise(rng, n, sr) + db(rng.uniform(-8, 0)) * _pump_hum(rng, n, sr, s)
    if recipe == "background":  # no flow: only faint distant low-frequency ambience
        return 0.3 * shaped_noise(rng, n, sr, lambda f: lowpass(f, 60, 3))
    if recipe == "noleak":
        x = _flow_noise(rng, n, sr)
        if rng.random() < 0.6:
            x += db(rng.uniform(-10, 0)) * _pump_hum(rng, n, sr, s)
        # At higher difficulty no-leak recordings may hear consumption (a customer drawing
        # water): leak-like broadband noise, but for part of the recording only, so single
        # segments are fooled while votes over the whole recording need not be.
        if rng.random() < 0.6 * difficulty:
            x += db(rng.uniform(-2, 4)) * _consumption(rng, n, sr)
        return x
    raise ValueError(f"unknown recipe {recipe!r}")


def _out_of_water(rng, n, sr) -> np.ndarray:
    """A sensor hanging in air: electronic hiss with a little 1/f flicker, no pipe sound."""
    return (rng.standard_normal(n)
            + 0.5 * shaped_noise(rng, n, sr, lambda f: (f + 1) ** -0.5 * lowpass(f, 40)))


# --- assembling and writing ---------------------------------------------------------------

def render(plan: Plan, config: SynthConfig) -> np.ndarray:
    """The recording's samples, float64 of shape ``(n,)``, in background units."""
    rng = _rng(config, plan.label, _TAG_SIGNAL, plan.index)
    n, sr = _n_samples(config), float(config.sample_rate)
    if plan.out_of_water:
        return _out_of_water(rng, n, sr)
    x = _background(rng, n, sr, plan.sensor)
    # leaks vary from night to night; the clip keeps the rare extremes physically plausible
    jitter = float(np.clip(rng.normal(0, 4), -10, 10))
    level = snr_db(config.difficulty) + plan.sensor.snr_offset_db + jitter
    recipe = plan.recipe
    if recipe == "mixed":  # unclassified: some other recipe, heard faintly
        recipe = ("leak", "crack", "normal", "background")[rng.integers(4)]
        level -= rng.uniform(4, 10)
    x += db(level) * _signature(recipe, rng, n, sr, plan.sensor, config.difficulty)
    if plan.interference:
        add_interference(rng, x, sr, get_site(config.site).bursts)
    return x


def _write(path: Path, x: np.ndarray, gain_db: int, sample_rate: int) -> None:
    """Peak-normalise (peak 0.3-0.8 of full scale, rising with gain; out-of-water hiss far
    lower) and write 16-bit PCM via a temporary name in the same folder."""
    peak = 0.02 if gain_db <= _OUT_OF_WATER_GAIN_DB else 0.3 + 0.5 * min(max(
        (gain_db - 4) / 28, 0.0), 1.0)
    pcm = np.round(x * (peak * 32767 / max(float(np.max(np.abs(x))), 1e-12)))
    write_pcm16(path, pcm.astype(np.int16), sample_rate)


def write_pcm16(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    """``pcm`` (int16 ``[samples]``) as a 16-bit WAV, written under a temporary name in the
    same folder and moved into place: a stopped run leaves no half-written recording."""
    tmp = path.with_name(f".{path.name}.part")
    with safe_write.guard(path, "writing a recording", cleanup=[tmp]):
        sf.write(tmp, pcm, sample_rate, format="WAV", subtype="PCM_16")
        safe_write.replace(tmp, path, "writing a recording")
