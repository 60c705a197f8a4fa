"""Sound ingredients for :mod:`leakhunter.recordings.synth.synth`: shaped noise, tones, and the
non-stationary interference bursts (speech, knocks, traffic, frog chirps).

Only numpy: noise is shaped in the frequency domain, tones are sines. Nothing here knows
about labels or sensors.
"""

from __future__ import annotations

import numpy as np


def shaped_noise(rng: np.random.Generator, n: int, sr: float, amplitude) -> np.ndarray:
    """Gaussian noise of ``n`` samples with |spectrum| ``amplitude(f)`` (f in Hz, an array),
    scaled to unit RMS."""
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec = rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    spec *= amplitude(np.maximum(f, 1e-3))
    spec[0] = 0.0  # no DC offset
    x = np.fft.irfft(spec, n)
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def lowpass(f, fc, order=2):
    return 1.0 / np.sqrt(1.0 + (f / fc) ** (2 * order))


def highpass(f, fc, order=2):
    return 1.0 / np.sqrt(1.0 + (fc / f) ** (2 * order))


def resonance(f, centre, bandwidth):
    return 1.0 / (1.0 + ((f - centre) / (bandwidth / 2)) ** 2)


def smooth(rng: np.random.Generator, n: int, sr: float, cutoff_hz: float) -> np.ndarray:
    """Unit-RMS random curve varying no faster than ``cutoff_hz``: slow modulations."""
    return shaped_noise(rng, n, sr, lambda f: np.exp(-0.5 * (f / cutoff_hz) ** 2))


def tones(rng, n, sr, fundamental, amplitudes) -> np.ndarray:
    """A harmonic series (amplitude of harmonic k+1 is ``amplitudes[k]``) whose fundamental
    wanders by ~0.2 %, as motors and the grid do. Harmonics above 0.45 * sr are dropped."""
    phase = 2 * np.pi * np.cumsum(fundamental * (1 + 0.002 * smooth(rng, n, sr, 0.5))) / sr
    out = np.zeros(n)
    for k, a in enumerate(amplitudes, start=1):
        if k * fundamental < 0.45 * sr:
            out += a * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


def db(level_db: float) -> float:
    return float(10.0 ** (level_db / 20.0))


# --- interference bursts ------------------------------------------------------------------

def _speech(rng, m, sr):
    """Voiced speech-like babble: harmonics of a wandering 100-250 Hz pitch, weighted by
    two drifting formants, chopped into syllables at 3-6 per second."""
    t = np.arange(m) / sr
    f0 = np.clip(rng.uniform(100, 250) * np.exp(0.12 * smooth(rng, m, sr, 3.0)), 80, 300)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    f1 = rng.uniform(300, 800) * np.exp(0.15 * smooth(rng, m, sr, 4.0))
    f2 = rng.uniform(900, 2000) * np.exp(0.1 * smooth(rng, m, sr, 4.0))
    k = np.arange(1, min(40, int(0.45 * sr / 80)) + 1)[:, None]
    fk = k * f0
    gain = (np.exp(-((fk - f1) / 150) ** 2) + 0.6 * np.exp(-((fk - f2) / 250) ** 2) + 0.03)
    x = np.sum(np.where(fk < 0.45 * sr, gain, 0.0) * np.sin(k * phase), axis=0)
    rate = rng.uniform(3, 6)
    return x * np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)), 0, None) ** 1.5


def _knocks(rng, m, sr):
    """1-5 impacts on the pipe: decaying resonant clicks."""
    x = np.zeros(m)
    for _ in range(rng.integers(1, 6)):
        start = int(rng.integers(0, m))
        t = np.arange(m - start) / sr
        for _ in range(rng.integers(1, 4)):
            f, tau = rng.uniform(100, min(1500, 0.4 * sr)), rng.uniform(0.005, 0.04)
            x[start:] += rng.uniform(0.3, 1) * np.exp(-t / tau) * np.sin(2 * np.pi * f * t)
    return x


def _traffic(rng, m, sr):
    """A vehicle passing overhead: 20-150 Hz rumble rising and falling."""
    lo, hi = rng.uniform(15, 30), rng.uniform(80, 150)
    x = shaped_noise(rng, m, sr, lambda f: highpass(f, lo) * lowpass(f, hi, 3))
    return x * np.sin(np.pi * np.arange(m) / m) ** rng.uniform(1, 3)


def _chirps(rng, m, sr):
    """Frog-like calls: short 500-2000 Hz sweeps repeated 4-12 times a second."""
    x, top = np.zeros(m), min(2000, 0.45 * sr)
    period, length = int(sr / rng.uniform(4, 12)), int(sr * rng.uniform(0.02, 0.06))
    fa, fb = rng.uniform(500, top, 2)
    t = np.arange(length) / sr
    call = np.sin(2 * np.pi * (fa * t + (fb - fa) * t ** 2 / (2 * t[-1] + 1e-9)))
    call *= np.hanning(length)
    for start in range(int(rng.integers(0, period)), m - length, period):
        x[start:start + length] += call * rng.uniform(0.6, 1.0)
    return x


_BURSTS = (_speech, _knocks, _traffic, _chirps)


def add_interference(rng, x: np.ndarray, sr: float, weights=None) -> None:
    """Add 1-4 bursts of 0.1-1.5 s in place, each 0-15 dB above the recording's RMS;
    ``weights`` (speech, knocks, traffic, chirps) makes some kinds likelier (None: equal)."""
    rms = np.sqrt(np.mean(x ** 2))
    for _ in range(rng.integers(1, 5)):
        m = min(x.size, int(rng.uniform(0.1, 1.5) * sr))
        kind = rng.integers(len(_BURSTS)) if weights is None else \
            rng.choice(len(_BURSTS), p=np.asarray(weights) / np.sum(weights))
        burst = _BURSTS[kind](rng, m, sr)
        burst_rms = np.sqrt(np.mean(burst ** 2))
        if burst_rms > 0:
            start = int(rng.integers(0, x.size - m + 1))
            x[start:start + m] += burst * (rms * db(rng.uniform(0, 15)) / burst_rms)
