"""Generated sensor pairs with a known leak position, to test and benchmark the correlator.

Each pair is two synchronised recordings ``a`` and ``b`` of sensors A and B, ``D`` metres
apart on one pipe, written with the truth (``pairs.csv``) a correlator's ``--pairs`` reads.
Pair ``i`` draws everything from its own generator, seeded by ``(seed, tag, i)``:

* **Pipe.** A material from ``cfg.materials``; the wave speed ``c`` (m/s) is the Korteweg
  speed of its typical main (:func:`~.wave_speed.for_material`); the span ``D`` (m) is
  uniform in ``cfg.span_m``.
* **Leak.** Unless the pair is one of the no-leak share, a leak at ``x`` (m from A)
  uniform in ``[0.05 D, 0.95 D]``. Its source is Gaussian noise, flat-ish from 5 Hz
  (2nd-order high-pass) to ``0.45 * rate`` (4th-order low-pass), mildly tilted (power
  ``~ (1 + f / 50 Hz) ** -tilt``, tilt uniform in [0, 1]).
* **Propagation** over ``d`` metres: the loss-factor model of Gao, Brennan, Joseph,
  Muggleton & Hunaidi ("A model of the correlation function of leak noise in buried
  plastic pipes", J. Sound Vib. 277 (2004) 133-148), the wavenumber
  ``k = (omega / c)(1 - i beta)`` giving::

      H(f, d) = exp(-beta * 2 pi f d / c) * exp(-i 2 pi f d / c)

  a pure delay ``d / c`` (s) and an attenuation that grows with frequency and distance,
  ``8.686 * beta * 2 pi f d / c`` dB, floored at -120 dB (a long plastic span carries
  almost nothing above a few tens of Hz). ``beta`` (dimensionless) per material is
  :data:`LOSS_FACTORS`. ``H`` is applied in the frequency domain to a source generated as
  one period of ``N`` samples (its spectrum drawn directly), ``N`` longer than the
  recording by the largest delay plus a guard: each sensor sees a contiguous stretch of one
  continuous source, and the phase shift delays it exactly, to a fraction of a sample.
* **Sensor noise**, drawn apart for A and B: coloured (power ``~ 1 / f ** tilt``, tilt
  uniform in [0, 1]) plus white hiss 10-20 dB below it, high-passed at 5 Hz, RMS 1.
* **SNR**, drawn for A and B independently from ``cfg.snr_db``: 20 log10 of the RMS of the
  received leak noise over that of the sensor's noise, both over the whole band (both are
  high-passed at 5 Hz). The received leak at each sensor is scaled to hit it exactly, so
  the two levels are not tied by the attenuation (the spectral shapes are).
* **Interference**, on a share ``cfg.interference_share`` of pairs (no-leak ones too):
  common-mode noise of a pump or traffic (low-pass at 80-600 Hz, high-pass at 5-15 Hz, on
  half of them pump hum: 2-5 harmonics of 15-50 Hz) at 5-50 m beyond A or B, propagated to
  both sensors by the same model. Its RMS at the nearer sensor is ``cfg.interference_db``
  re the received leak there (re the sensor noise on a no-leak pair). It arrives with
  ``tau = -D / c`` from beyond A (A first) and ``+D / c`` from beyond B.
* **Files.** Both recordings are scaled by one gain (the relative level is kept) to a peak
  of 0.5 of full scale and written as 16-bit PCM mono WAV,
  ``recordings/P0001A~R000001~20240101T010000~30.wav`` and ``P0001B~R000002~...``: one
  timestamp per pair, pairs an hour apart.

The delay of the leak is ``tau = t_A - t_B = (x - (D - x)) / c`` (s), positive when A hears
it later; ``x = (D + c tau) / 2``. Only numpy: 100 pairs of 20 s at 8192 Hz take seconds.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PairSynthConfig
from ..recordings.synth.sounds import db, highpass, lowpass
from ..recordings.synth.synth import prepare_output, write_pcm16
from ..runtime import safe_write
from ..runtime.log import progress_bar
from .wave_speed import for_material, material

log = logging.getLogger(__name__)

# Loss factors beta of the fluid-borne wave (dimensionless; k = (omega / c)(1 - i beta)).
# Plastic: Gao et al. (J. Sound Vib. 2004) measured a wall loss factor eta of about 0.06
# for MDPE; with the fluid loading of a plastic main (K D / (E h) of 10-14) the wave's beta
# is close to eta / 2: 0.03 for PE, 0.02 for PVC (eta about 0.04). Metals lose far less, in
# the wall and by radiation into the soil (Muggleton et al., J. Sound Vib. 2002): a few
# thousandths; asbestos cement lies between. Order-of-magnitude values, as the correlator
# needs: realistic spectra, not a model of one site.
LOSS_FACTORS: dict[str, float] = {
    "ductile iron": 0.003,
    "cast iron": 0.004,
    "steel": 0.002,
    "copper": 0.002,
    "asbestos cement": 0.01,
    "pvc": 0.02,
    "pe": 0.03,
}
FLOOR_DB = -120.0  # the attenuation stops here
HIGHPASS_HZ = 5.0
PEAK = 0.5  # of full scale, the louder of the two files
GAIN_DB = 30
GUARD_S = 0.25  # the source's period exceeds the recording by the largest delay and this
BEYOND_M = (5.0, 50.0)  # interference source this far beyond the nearer sensor
PAIRS_COLUMNS = ("a", "b", "distance_m", "material", "wave_speed_m_s", "leak",
                 "leak_position_m", "snr_a_db", "snr_b_db", "interference", "loss_factor")
SENSORS_COLUMNS = ("sensor_a", "sensor_b", "distance_m", "material", "wave_speed_m_s")
_TAG = 0x9A125  # keeps this stream apart from other generators seeded by (seed, ...)
_EPOCH = datetime(2024, 1, 1, 1, 0, 0)


@dataclass(frozen=True)
class GeneratedPair:
    """One pair in memory: ``a`` and ``b`` (float32, the samples as written, full scale 1),
    ``truth`` (the ``pairs.csv`` fields but the paths, plus ``delay_s``, the leak's true
    ``t_A - t_B``, and the interference's ``interference_delay_s``, ``interference_db``,
    ``interference_beyond_m``), the names of the files, and, when asked for, ``parts``:
    ``leak``, ``noise``, ``interference`` as ``(at A, at B)`` float64 at the files' scale
    (``a`` is their sum, rounded to float32)."""

    a: np.ndarray
    b: np.ndarray
    truth: dict[str, Any]
    names: tuple[str, str]
    timestamp: str
    parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PairSynthSummary:
    """What :func:`synthesize_pairs` wrote."""

    out_dir: Path
    pairs: int
    leak_pairs: int
    with_interference: int
    total_seconds: float  # of audio, both sensors
    pairs_csv: Path


def loss_factor(name: str) -> float:
    """``beta`` of a material (any name :func:`~.wave_speed.material` reads)."""
    return LOSS_FACTORS[material(name).name]


def transfer(freqs: np.ndarray, distance_m: float, speed_m_s: float,
             beta: float) -> np.ndarray:
    """``H(f, d)`` of the module docstring at ``freqs`` (Hz), attenuation floored at
    :data:`FLOOR_DB`."""
    omega_t = 2.0 * np.pi * freqs * (distance_m / speed_m_s)
    gain = np.exp(np.maximum(-beta * omega_t, FLOOR_DB / 20.0 * math.log(10.0)))
    return gain * np.exp(-1j * omega_t)


def fast_length(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: an FFT length numpy transforms quickly."""
    best, p5 = 1 << max(n - 1, 1).bit_length(), 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def make_pair(cfg: PairSynthConfig, index: int, keep_parts: bool = False) -> GeneratedPair:
    """Pair ``index`` (0-based) of ``cfg``: its two waveforms and its truth, nothing on disk.
    :class:`~leakhunter.errors.ConfigError` for an unknown material."""
    rng = np.random.default_rng((cfg.seed, _TAG, index))
    sr, n = float(cfg.sample_rate), _n_samples(cfg)
    # every draw happens in this order whatever the branches, so shares do not reshuffle
    name = material(cfg.materials[int(rng.integers(len(cfg.materials)))]).name
    speed, beta = round(for_material(name).speed, 3), LOSS_FACTORS[name]
    span = round(float(rng.uniform(*cfg.span_m)), 4)
    leak = bool(rng.random() >= cfg.no_leak_share)
    x = round(float(rng.uniform(0.05, 0.95)) * span, 4)
    snr = rng.uniform(cfg.snr_db[0], cfg.snr_db[1], size=2)
    interfered = bool(rng.random() < cfg.interference_share)
    side = "AB"[int(rng.integers(2))]
    beyond = float(rng.uniform(*BEYOND_M))
    interference_db = float(rng.uniform(*cfg.interference_db))

    # paths: (to A, to B) of the leak and of the interference
    leak_d = (x, span - x)
    int_d = (beyond, beyond + span) if side == "A" else (beyond + span, beyond)
    longest = max(int_d) if interfered else max(leak_d)
    period = fast_length(n + math.ceil((longest / speed + GUARD_S) * sr))
    freqs = np.fft.rfftfreq(period, 1.0 / sr)

    noise = tuple(_sensor_noise(rng, n, sr) for _ in "AB")  # RMS 1 each
    leak_part = (np.zeros(n), np.zeros(n))
    if leak:
        source = _spectrum(rng, freqs, _leak_shape(rng, sr))
        leak_part = tuple(_propagate(source, freqs, d, speed, beta, n) * db(level)
                          for d, level in zip(leak_d, snr))
    int_part = (np.zeros(n), np.zeros(n))
    if interfered:
        source = _spectrum(rng, freqs, _interference_shape(rng, sr))
        _add_hum(rng, source, freqs, sr, period)
        near = 0 if side == "A" else 1
        heard = [_propagate(source, freqs, d, speed, beta, n, unit=False) for d in int_d]
        ref = _rms(leak_part[near]) if leak else _rms(noise[near])
        scale = ref * db(interference_db) / max(_rms(heard[near]), 1e-300)
        int_part = (heard[0] * scale, heard[1] * scale)

    a = noise[0] + leak_part[0] + int_part[0]
    b = noise[1] + leak_part[1] + int_part[1]
    gain = PEAK / max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-300)
    truth: dict[str, Any] = {
        "distance_m": span, "material": name, "wave_speed_m_s": speed, "leak": int(leak),
        "leak_position_m": x if leak else None,
        "snr_a_db": round(float(snr[0]), 2) if leak else None,
        "snr_b_db": round(float(snr[1]), 2) if leak else None,
        "interference": f"beyond {side}" if interfered else "", "loss_factor": beta,
        "delay_s": (leak_d[0] - leak_d[1]) / speed if leak else None,
        "interference_delay_s": (int_d[0] - int_d[1]) / speed if interfered else None,
        "interference_db": round(interference_db, 2) if interfered else None,
        "interference_beyond_m": round(beyond, 2) if interfered else None,
    }
    number, stamp = index + 1, (_EPOCH + timedelta(hours=index)).strftime("%Y%m%dT%H%M%S")
    names = tuple(f"P{number:04d}{s}~R{2 * index + k + 1:06d}~{stamp}~{GAIN_DB}.wav"
                  for k, s in enumerate("AB"))
    parts = None
    if keep_parts:
        parts = {"leak": (leak_part[0] * gain, leak_part[1] * gain),
                 "noise": (noise[0] * gain, noise[1] * gain),
                 "interference": (int_part[0] * gain, int_part[1] * gain)}
    return GeneratedPair((a * gain).astype(np.float32), (b * gain).astype(np.float32),
                         truth, names, stamp, parts)


def synthesize_pairs(out_dir: str | Path, cfg: PairSynthConfig = PairSynthConfig(),  # noqa: B008
                     overwrite: bool = False) -> PairSynthSummary:
    """Write ``cfg.count`` pairs into ``out_dir``: ``recordings/*.wav``, ``pairs.csv``
    (the truth, :data:`PAIRS_COLUMNS`, paths relative to ``out_dir``) and ``sensors.csv``
    (the layout, :data:`SENSORS_COLUMNS`).

    :class:`InputError` if ``out_dir`` is a file, or exists and is not empty while
    ``overwrite`` is false (with it, ``recordings/`` is removed first and the CSV files are
    replaced); :class:`ConfigError` for an unknown material, before anything is written.
    Each file is written under a temporary name and renamed; ``pairs.csv`` comes last."""
    out_dir = Path(out_dir)
    for name in cfg.materials:
        material(name)  # an unknown material fails before anything is written
    prepare_output(out_dir, ("recordings",), overwrite)
    folder = out_dir / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    rows, layout, leaks, interfered = [], [], 0, 0
    for i in progress_bar(range(cfg.count), total=cfg.count, desc="synth-pairs", unit="pair"):
        pair = make_pair(cfg, i)
        for file_name, x in zip(pair.names, (pair.a, pair.b)):
            _write_wav(folder / file_name, x, cfg.sample_rate)
        t = pair.truth
        leaks += t["leak"]
        interfered += bool(t["interference"])
        rows.append((f"recordings/{pair.names[0]}", f"recordings/{pair.names[1]}",
                     f"{t['distance_m']:.4f}", t["material"], f"{t['wave_speed_m_s']:.3f}",
                     str(t["leak"]), "" if t["leak_position_m"] is None
                     else f"{t['leak_position_m']:.4f}", _cell(t["snr_a_db"]),
                     _cell(t["snr_b_db"]), t["interference"], f"{t['loss_factor']:g}"))
        layout.append((pair.names[0].split("~")[0], pair.names[1].split("~")[0],
                       f"{t['distance_m']:.4f}", t["material"], f"{t['wave_speed_m_s']:.3f}"))
    safe_write.write_text(out_dir / "sensors.csv", _csv(SENSORS_COLUMNS, layout),
                          "writing the sensor layout")
    pairs_csv = out_dir / "pairs.csv"
    safe_write.write_text(pairs_csv, _csv(PAIRS_COLUMNS, rows), "writing the pairs' truth")
    summary = PairSynthSummary(out_dir, cfg.count, leaks, interfered,
                               2 * cfg.count * _n_samples(cfg) / cfg.sample_rate, pairs_csv)
    log.debug("wrote %d pairs (%d with a leak, %d with interference) to %s", summary.pairs,
              leaks, interfered, out_dir)
    return summary


# --- signal ingredients -----------------------------------------------------------------------

def _n_samples(cfg: PairSynthConfig) -> int:
    return max(1, round(cfg.duration_s * cfg.sample_rate))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)))


def _spectrum(rng: np.random.Generator, freqs: np.ndarray, shape) -> np.ndarray:
    """One period of Gaussian noise with |spectrum| ``shape(f)``, as its rFFT (no DC, no
    Nyquist bin: both would need real values)."""
    spec = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size))
    spec *= shape(np.maximum(freqs, 1e-3))
    spec[0] = 0.0
    spec[-1] = 0.0
    return spec


def _propagate(source: np.ndarray, freqs: np.ndarray, distance_m: float, speed_m_s: float,
               beta: float, n: int, unit: bool = True) -> np.ndarray:
    """The first ``n`` samples of the source heard ``distance_m`` away; unit RMS unless
    ``unit`` is false."""
    period = 2 * (freqs.size - 1)
    x = np.fft.irfft(source * transfer(freqs, distance_m, speed_m_s, beta), period)[:n]
    return x / max(_rms(x), 1e-300) if unit else x


def _leak_shape(rng: np.random.Generator, sr: float):
    tilt = rng.uniform(0.0, 1.0)

    def shape(f):
        return (highpass(f, HIGHPASS_HZ) * lowpass(f, 0.45 * sr, 4)
                * (1.0 + f / 50.0) ** (-tilt / 2))
    return shape


def _interference_shape(rng: np.random.Generator, sr: float):
    low, high = rng.uniform(HIGHPASS_HZ, 15.0), min(rng.uniform(80.0, 600.0), 0.45 * sr)
    slope = rng.uniform(0.0, 1.0)

    def shape(f):
        return highpass(f, low) * lowpass(f, high, 2) * (1.0 + f / 20.0) ** (-slope / 2)
    return shape


def _add_hum(rng: np.random.Generator, spec: np.ndarray, freqs: np.ndarray, sr: float,
             period: int) -> None:
    """On half the draws, 2-5 harmonics of a 15-50 Hz pump, on exact bins (so periodic),
    together -10 to 0 dB re the broadband noise. Draws the same numbers either way."""
    on, f0, count = rng.random() < 0.5, rng.uniform(15.0, 50.0), int(rng.integers(2, 6))
    level, amps, phases = rng.uniform(-10.0, 0.0), rng.uniform(0.3, 1.0, 5), rng.uniform(
        0.0, 2 * np.pi, 5)
    if not on:
        return
    bins = [round(k * f0 * period / sr) for k in range(1, count + 1)]
    keep = [j for j, k in enumerate(bins) if 0 < k < freqs.size - 1]
    if not keep:
        return
    broadband = 2.0 * float(np.sum(np.abs(spec) ** 2)) / period ** 2  # mean square
    tone_ms = float(np.sum(amps[keep] ** 2)) / 2.0
    scale = math.sqrt(broadband * 10.0 ** (level / 10.0) / tone_ms)
    for j in keep:  # a sine of amplitude A is A * period / 2 on its bin
        spec[bins[j]] += scale * amps[j] * period / 2.0 * np.exp(1j * phases[j])


def _sensor_noise(rng: np.random.Generator, n: int, sr: float) -> np.ndarray:
    """Coloured noise (power ~ 1 / f ** tilt) plus hiss 10-20 dB down, above 5 Hz; RMS 1."""
    tilt, hiss = rng.uniform(0.0, 1.0), db(rng.uniform(-20.0, -10.0))
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 1e-3)
    coloured = rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)
    coloured *= freqs ** (-tilt / 2)
    white = rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)
    colour_ms = float(np.mean(np.abs(coloured[1:]) ** 2)) if freqs.size > 1 else 1.0
    spec = (coloured + white * hiss * math.sqrt(colour_ms / 2.0)) * highpass(freqs, HIGHPASS_HZ)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return x / max(_rms(x), 1e-300)


# --- writing ----------------------------------------------------------------------------------

def _write_wav(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM of ``x`` (full scale 1), clipped."""
    pcm = np.clip(np.round(x.astype(np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    write_pcm16(path, pcm, sample_rate)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _csv(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return text.getvalue()
