"""From a batch of synchronised pairs to positions: window, band, delay, interval, status.

:func:`locate_batch` takes ``P`` pairs of one length and sample rate (``[P, N]`` tensors on
the CPU or a GPU), their spans and wave speeds, and returns one :class:`Location` each:

1. **Window**: the Welch window must hold the largest possible delay twice over (span over
   the slowest wave speed the material allows) or the correlation wraps round; it is the
   shortest power of two of at least ``window_spans`` such delays (and ``min_window_s``),
   but no longer than half the recording, so that at least three windows are averaged.
2. **Band**: where the two sensors hear something in common. The magnitude-squared
   coherence of ``K`` windows of independent noise is about ``1 / K``; it is smoothed over
   ``SMOOTH_HZ`` and the frequencies standing ``BAND_SIGMAS`` standard errors above that
   floor are the band. ``band_hz`` fixes the band instead.
3. **Delay**: the generalised cross-correlation over the band with the configured
   weighting (:mod:`.correlation`) at whole samples, searched within the physically
   possible delays (plus ``SEARCH_MARGIN``); the peak is then evaluated between samples
   (:func:`~.correlation.refine`).
4. **Quality**: the peak's height above the correlation at lags no source between or
   beyond the sensors can produce (beyond the search range), in robust standard deviations
   of it. A pair without a common source stands at about 4 (the largest of many noise
   values); ``min_quality`` separates the two.
5. **Interval**: the delay's standard error is the Cramér–Rao bound of the coherence in
   the band (Knapp & Carter 1976: ``var = 1 / (2 T sum (2 pi f)^2 C / (1 - C) df)``, ``T``
   the recording's length, ``C`` the coherence less its noise floor), never below a
   quarter of the peak's half-height half-width (a broad peak is not located to a
   sample); the position's interval spans that delay interval at ``confidence`` and the
   material's range of wave speeds.
6. **Status**: ``no correlation`` without a band or below ``min_quality``; ``outside``
   when, at the fastest speed the material allows, the source lies within ``edge_share``
   of the span of a sensor or beyond it (a pump or traffic past one end: the correlated
   sound is not between the sensors); ``located`` otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import torch

from ..config import LocateConfig
from ..errors import ConfigError
from .correlation import Correlation, Spectra, refine, spectra, weighted
from .measures import Noise, half_width, moving_average
from .wave_speed import WaveSpeed

LOCATED, OUTSIDE, NO_CORRELATION, BAD_INPUT = "located", "outside", "no correlation", "bad input"
STATUSES = (LOCATED, OUTSIDE, NO_CORRELATION, BAD_INPUT)
SMOOTH_HZ = 16.0  # coherence smoothing width: wide enough to steady it, narrower than a band
BAND_SIGMAS = 4.0  # how far above the independent-noise floor a coherent frequency stands
MIN_BAND_HZ = 4.0  # less coherent bandwidth than this is no band at all
SEARCH_MARGIN = 0.1  # search delays up to (1 + this) x span / slowest speed
MIN_SPANS = 3.0  # a window holds at least this many largest delays: twice to avoid wrapping
                 # round, the rest for lags no source reaches (the quality's noise)
MIN_WINDOWS = 3  # Welch windows averaged at least
OVERLAP_SHARE = 1.06  # Hann at half overlap: K windows are worth about K / 1.06 independent


@dataclass(frozen=True)
class Location:
    """One pair's answer. Positions in metres from sensor A, delays in seconds
    (``t_A - t_B``); ``None`` where the status leaves them undefined (no correlation)."""

    status: str
    position_m: float | None
    low_m: float | None
    high_m: float | None
    delay_s: float | None
    delay_error_s: float | None  # the delay's half interval at the confidence
    wave_speed_m_s: float
    speed_low_m_s: float
    speed_high_m_s: float
    quality: float
    coherence: float  # mean (floor-corrected) coherence in the band; 0 without one
    band_hz: tuple[float, float] | None  # lowest and highest coherent frequency
    window_s: float
    reason: str = ""


@dataclass(frozen=True)
class Curves:
    """What the plot of one pair needs: the correlation against delay (s) and the coherence
    against frequency (Hz) with the band mask; numpy-free tensors on the CPU."""

    delays_s: torch.Tensor
    correlation: torch.Tensor
    freqs_hz: torch.Tensor
    coherence: torch.Tensor
    band: torch.Tensor
    search_s: float = field(default=0.0)


def window_samples(distance_m: float, slowest_m_s: float, rate: float, samples: int,
                   cfg: LocateConfig) -> int:
    """The Welch window (samples) for a span; :class:`ConfigError` when the recordings are
    too short to hold :data:`MIN_WINDOWS` windows that long."""
    largest = distance_m / slowest_m_s  # s
    needed = MIN_SPANS * largest * rate  # the wrap limit (2) and lags beyond the search
    if cfg.window_s is not None:
        window = int(round(cfg.window_s * rate))
    else:
        want = max(cfg.window_spans * largest, cfg.min_window_s) * rate
        window = 1 << max(3, math.ceil(math.log2(want)))
        while window > 2 * samples // (MIN_WINDOWS + 1) and window / 2 >= needed:
            window //= 2  # shorter recordings: fewer delays per window, but enough windows
    if window < needed:
        raise ConfigError(f"a {window / rate:.2f} s window cannot hold delays of up to "
                          f"{largest:.2f} s (span {distance_m:g} m at {slowest_m_s:.0f} m/s) "
                          f"{MIN_SPANS:g} times over: give a longer --window")
    if window * (MIN_WINDOWS + 1) > 2 * samples:
        needs = (f"--window {cfg.window_s:g}" if cfg.window_s is not None else
                 f"a span of {distance_m:g} m at {slowest_m_s:.0f} m/s")
        raise ConfigError(f"recordings of {samples / rate:.1f} s hold fewer than "
                          f"{MIN_WINDOWS} windows of {window / rate:.2f} s: {needs} needs "
                          f"at least {(MIN_WINDOWS + 1) * window / 2 / rate:.1f} s")
    return window


def coherent_band(s: Spectra, cfg: LocateConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(band, excess)``: bool ``[P, F]``, the frequencies where the pair is coherent, and
    the smoothed coherence above its independent-noise floor ``[P, F]`` (clamped at 0)."""
    coh = s.coherence
    step = s.step
    width = max(1, int(round(SMOOTH_HZ / step)))
    smooth = moving_average(coh, width)
    floor = OVERLAP_SHARE / s.windows
    # neighbouring bins of a Hann window are not independent: about width / 2 of them are
    spread = floor / math.sqrt(max(width / 2.0, 1.0))
    excess = ((smooth - floor) / (1.0 - floor)).clamp(0.0, 0.999)
    if cfg.band_hz is not None:
        lo, hi = cfg.band_hz
        band = ((s.freqs >= lo) & (s.freqs <= hi))[None, :].expand_as(coh).clone()
    else:
        band = smooth > floor + BAND_SIGMAS * spread
        # too little coherence to see bin by bin is not yet no correlation: a weak leak
        # spread over a wide band still adds up in the correlation, so such pairs use
        # every frequency and the peak's quality decides
        narrow = band.sum(dim=1) * step < MIN_BAND_HZ
        band = band | narrow[:, None]  # (no boolean indexing: it would wait for a GPU)
    band[:, 0] = False  # never the DC bin
    return band, excess


@dataclass(frozen=True)
class Measured:
    """What the correlation of ``P`` pairs measured, as tensors on the pairs' device: per
    pair ``[P]`` the delay and its standard error (samples), the peak quality, the band's
    width, lowest and highest frequency (Hz; inf / -inf without one) and mean excess
    coherence, the search range (samples); and the curves behind them (``corr``,
    ``excess`` and ``band`` ``[P, F]`` over ``freqs``)."""

    delay: torch.Tensor
    sigma: torch.Tensor
    quality: torch.Tensor
    inner_delay: torch.Tensor  # the highest peak strictly between the sensors, away from
    inner_sigma: torch.Tensor  # the first; used when the first is at or beyond an end
    inner_quality: torch.Tensor
    bandwidth: torch.Tensor
    band_low: torch.Tensor
    band_high: torch.Tensor
    coherence: torch.Tensor
    search: torch.Tensor
    corr: Correlation
    freqs: torch.Tensor
    excess: torch.Tensor
    band: torch.Tensor


def measure(a: torch.Tensor, b: torch.Tensor, rate: float, distances_m: list[float],
            slowest_m_s: list[float], cfg: LocateConfig, window: int,
            weights: torch.Tensor | None = None, fastest_m_s: list[float] | None = None,
            lines_removed: bool = False) -> Measured:
    """The correlation of ``P`` pairs ``a``, ``b`` (``[P, N]`` float, one device;
    ``lines_removed``: by :func:`~.correlation.stack_without_lines`) over ``window``
    samples (each weighted by ``weights`` ``[P, K]`` when given), searched up to each span
    over its slowest wave speed. Tensor work only, on the pairs' device: nothing here
    waits for a GPU."""
    s = spectra(a, b, window, rate, weights, lines_removed)
    band, excess = coherent_band(s, cfg)
    x = weighted(s, cfg.weighting, band)
    # the correlation at whole samples finds the peak and measures the noise; only the
    # peak's neighbourhood is evaluated between samples (refine), not the whole lag axis
    corr = Correlation(torch.fft.fftshift(torch.fft.irfft(x, n=window, dim=1), dim=1),
                       torch.arange(window, device=a.device, dtype=a.dtype) - window // 2, 1)
    spans = torch.tensor([distances_m, slowest_m_s, fastest_m_s or slowest_m_s],
                         dtype=a.dtype, device=a.device)  # one transfer, [3, P]
    search = spans[0] / spans[1] * (1 + SEARCH_MARGIN) * rate  # samples, [P]
    values, lags = corr.values, corr.lags
    # both peaks lie within the largest search range of the batch: only those lags are
    # searched (its reach is known from the spans alone, without asking the device)
    reach = math.ceil(max(d / v for d, v in zip(distances_m, slowest_m_s))
                      * (1 + SEARCH_MARGIN) * rate)
    lo, hi = max(0, window // 2 - reach), min(window, window // 2 + reach + 1)
    part, part_lags = values[:, lo:hi], lags[None, lo:hi]
    coarse = part.masked_fill(part_lags.abs() > search[:, None], float("-inf")).argmax(1) + lo
    width = half_width(values, coarse)
    # the highest peak a source strictly between the sensors can make (inside the edges
    # at the fastest speed), two half-widths away from the first: a leak heard under a
    # louder pump beyond an end
    inner = spans[0] / spans[2] * (1 - 2 * cfg.edge_share) * rate
    near = (part_lags - lags[coarse][:, None]).abs() <= 2 * width[:, None] + 1
    second = part.masked_fill((part_lags.abs() > inner[:, None]) | near,
                              float("-inf")).argmax(dim=1) + lo
    peaks = torch.stack([coarse, second])  # [2, P]: both refined in one pass
    delays, heights = refine(x, lags[peaks], span=_band_span(band))
    widths = torch.stack([width, half_width(values, second)])
    # what both peaks are measured against, once: the bound of the band's coherence and
    # the correlation where no source can be
    sigma = torch.maximum(_crlb(s, band, excess, a.shape[1], rate), widths / 4)  # [2, P]
    quality = Noise.of(corr, search, window).quality(heights, delays)
    inf = torch.tensor(float("inf"), dtype=a.dtype, device=a.device)
    return Measured(
        delay=delays[0], sigma=sigma[0], quality=quality[0],
        inner_delay=delays[1], inner_sigma=sigma[1], inner_quality=quality[1],
        bandwidth=band.sum(dim=1) * s.step,
        band_low=torch.where(band, s.freqs, inf).amin(dim=1),
        band_high=torch.where(band, s.freqs, -inf).amax(dim=1),
        coherence=(excess * band).sum(dim=1) / band.sum(dim=1).clamp_min(1),
        search=search, corr=corr, freqs=s.freqs, excess=excess, band=band)


def _band_span(band: torch.Tensor) -> tuple[int, int] | None:
    """``(first, last + 1)``: the frequencies (bins) any pair's band holds, on the CPU,
    where it is known at once (on a GPU asking would wait for it: ``None``, every bin)."""
    if band.device.type != "cpu":
        return None
    held = band.any(dim=0).nonzero()
    return (int(held[0]), int(held[-1]) + 1) if held.numel() else (0, 1)


def locate_batch(a: torch.Tensor, b: torch.Tensor, rate: float, distances_m: list[float],
                 speeds: list[WaveSpeed], cfg: LocateConfig, window: int,
                 curves: bool = False, weights: torch.Tensor | None = None,
                 lines_removed: bool = False, strongest: bool = False
                 ) -> tuple[list[Location], list[Curves] | None]:
    """Locate ``P`` pairs ``a``, ``b`` (``[P, N]`` float, one device; ``lines_removed`` as
    :func:`measure` takes it) sharing ``window`` (from :func:`window_samples` for the
    longest span of the batch), its Welch windows weighted by ``weights`` ``[P, K]`` when
    given. Returns the locations and, with ``curves``, what a plot of each needs.
    ``strongest``: always the highest peak, never a weaker one between the sensors under a
    louder sound at an end (calibration, where the source's side is known)."""
    m = measure(a, b, rate, distances_m, [v.low for v in speeds], cfg, window, weights,
                [v.high for v in speeds], lines_removed)
    # one transfer of the per-pair figures, not one wait per number
    per_pair = torch.stack([m.delay, m.sigma, m.quality, m.bandwidth, m.band_low,
                            m.band_high, m.coherence, m.inner_delay, m.inner_sigma,
                            m.inner_quality]).double().cpu().T.tolist()
    z = NormalDist().inv_cdf(0.5 + cfg.confidence / 2)
    out = []
    for (delay, sigma, quality, bandwidth, low, high, coherence, *inner), d, v in zip(
            per_pair, distances_m, speeds):
        base = dict(wave_speed_m_s=v.speed, speed_low_m_s=v.low, speed_high_m_s=v.high,
                    quality=quality, coherence=coherence, window_s=window / rate,
                    band_hz=(low, high) if bandwidth > 0 else None)
        if bandwidth < MIN_BAND_HZ or not quality >= cfg.min_quality:  # (NaN: none)
            why = (_narrow_band(cfg, bandwidth, rate) if bandwidth < MIN_BAND_HZ
                   else f"peak quality {quality:.1f} below {cfg.min_quality:g}")
            out.append(Location(NO_CORRELATION, None, None, None, None, None, reason=why,
                                **base))
            continue
        tau, err = delay / rate, z * sigma / rate
        status, why = LOCATED, ""
        if v.high * abs(tau) >= (1 - 2 * cfg.edge_share) * d:
            end = "A" if tau < 0 else "B"
            if not strongest and inner[2] >= cfg.min_quality:  # a weaker source between
                why = (f"a louder correlated sound comes from {end}'s end or beyond it "
                       f"(peak quality {quality:.1f}); this is the strongest between them")
                tau, err, base["quality"] = inner[0] / rate, z * inner[1] / rate, inner[2]
            else:
                status = OUTSIDE
                why = (f"the correlated sound comes from {end}'s end or beyond it, not from "
                       f"between the sensors")
        corners = [(d + c * t) / 2 for c in (v.low, v.high) for t in (tau - err, tau + err)]
        out.append(Location(status, (d + v.speed * tau) / 2, min(corners), max(corners), tau,
                            err, reason=why, **base))
    plots = None
    if curves:
        lags_s = (m.corr.lags / rate).cpu()
        plots = [Curves(lags_s, m.corr.values[i].cpu(), m.freqs.cpu(), m.excess[i].cpu(),
                        m.band[i].cpu(), float(m.search[i]) / rate)
                 for i in range(a.shape[0])]
    return out, plots


def _narrow_band(cfg: LocateConfig, bandwidth: float, rate: float) -> str:
    """Why a pair's band is too narrow to correlate over: only a fixed ``--band`` can be
    (a band chosen from the coherence widens to every frequency instead)."""
    if cfg.band_hz is None:
        return f"only {bandwidth:.1f} Hz of coherent frequencies"
    lo, hi = cfg.band_hz
    return (f"--band {lo:g},{hi:g} holds {bandwidth:.1f} Hz of this pair's 0 to "
            f"{rate / 2:g} Hz; at least {MIN_BAND_HZ:g} Hz are needed")


def _crlb(s: Spectra, band: torch.Tensor, excess: torch.Tensor, samples: int,
          rate: float) -> torch.Tensor:
    """The delay's Cramér–Rao bound (standard error, samples ``[P]``) of the coherence in
    the band; a peak's standard error is this, floored at a quarter of its half-height
    half-width."""
    omega = 2 * math.pi * s.freqs[None, :]
    c = excess.clamp(max=0.99) * band
    information = 2 * samples / rate * (omega ** 2 * c / (1 - c) * s.step).sum(dim=1)  # s^-2
    return information.clamp_min(1e-30).rsqrt() * rate  # samples
