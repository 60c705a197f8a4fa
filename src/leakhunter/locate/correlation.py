"""Generalised cross-correlation of sensor pairs, batched: the delay between two recordings.

For a pair ``a``, ``b`` (``[P, N]`` samples, ``P`` pairs at once, on the CPU or a GPU) the
Welch-averaged spectra are computed over Hann windows of ``window`` samples at half
overlap: ``G_aa``, ``G_bb`` and the cross-spectrum ``G_ab = E[A conj(B)]``, each
``[P, F]``. A weighting ``W`` (Knapp & Carter 1976) shapes the cross-spectrum before the
inverse transform::

    plain  W = 1                                   (the cross-correlation itself)
    phat   W = 1 / |G_ab|                          (phase only: sharp peaks, noise too)
    scot   W = 1 / sqrt(G_aa G_bb)                 (each sensor's colour removed)
    ml     W = C / (|G_ab| (1 - C)), C = coherence (Hannan–Thomson: trust coherent bands)

and a band mask keeps the frequencies given. The correlation ``R[P, L]`` runs over lags of
``-window/2 .. window/2 - 1`` samples; its peak lies at ``tau = t_A - t_B``, positive when
the sound reaches A later (``a`` is ``b`` delayed). A window must therefore be longer than
twice the largest possible delay (the span over the wave speed), or the peak wraps round.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ..config import WEIGHTINGS
from ..errors import ConfigError

EPS = 1e-12  # relative floor of spectra before division


@dataclass(frozen=True)
class Spectra:
    """Welch averages of a batch of pairs: ``aa``, ``bb`` real ``[P, F]``, ``ab`` complex
    ``[P, F]``; ``windows``: how many were averaged; ``freqs``: ``[F]`` Hz, ``step`` apart."""

    aa: torch.Tensor
    bb: torch.Tensor
    ab: torch.Tensor
    windows: int
    freqs: torch.Tensor
    step: float  # Hz between frequencies

    @property
    def coherence(self) -> torch.Tensor:
        """Magnitude-squared coherence ``[P, F]`` in [0, 1]."""
        floor = EPS * (self.aa.amax(dim=1, keepdim=True) * self.bb.amax(dim=1, keepdim=True))
        return (self.ab.abs() ** 2 / (self.aa * self.bb).clamp_min(floor)).clamp(0.0, 1.0)


def window_count(samples: int, window: int) -> int:
    """How many Welch windows of ``window`` samples at half overlap ``samples`` hold."""
    return (samples - window) // (window // 2) + 1


def spectra(a: torch.Tensor, b: torch.Tensor, window: int, rate: float,
            weights: torch.Tensor | None = None) -> Spectra:
    """Welch auto- and cross-spectra of ``a`` and ``b`` (``[P, N]``, same shape), Hann
    windows of ``window`` samples at half overlap; ``weights`` (``[P, K]``, non-negative,
    :func:`window_count` windows) weight each window's share of the averages."""
    if a.shape != b.shape or a.dim() != 2:
        raise ConfigError(f"pairs must be two [P, N] batches of one shape, not "
                          f"{tuple(a.shape)} and {tuple(b.shape)}")
    if window < 8 or window > a.shape[1]:
        raise ConfigError(f"a window of {window} samples needs recordings at least that long "
                          f"(they hold {a.shape[1]})")
    taper = _hann(window).to(device=a.device, dtype=a.dtype)
    # [P, F, K]: windows last, so each average below is one contiguous dot product
    kw = dict(n_fft=window, hop_length=window // 2, window=taper, center=False,
              return_complex=True)
    fa, fb = torch.stft(a, **kw), torch.stft(b, **kw)
    freqs = torch.fft.rfftfreq(window, d=1.0 / rate).to(a.device)
    count = fa.shape[2]
    dot = torch.linalg.vecdot  # sum_k conj(x_k) y_k over the windows: one pass, no copies
    if weights is None:
        return Spectra(aa=dot(fa, fa).real / count, bb=dot(fb, fb).real / count,
                       ab=dot(fb, fa) / count, windows=count, freqs=freqs, step=rate / window)
    if weights.shape != (fa.shape[0], count):
        raise ConfigError(f"window weights must be [{fa.shape[0]}, {count}], not "
                          f"{list(weights.shape)}")
    share = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-30)  # [P, K]
    # unequal weights average fewer windows' worth: Kish's effective sample size
    windows = max(1, int(float((1.0 / (share ** 2).sum(dim=1)).min())))
    wa, wb = fa * share[:, None, :], fb * share[:, None, :]
    return Spectra(aa=dot(fa, wa).real, bb=dot(fb, wb).real, ab=dot(fb, wa),
                   windows=windows, freqs=freqs, step=rate / window)


@functools.lru_cache(maxsize=8)
def _steps_table(n: int, upsample: int) -> torch.Tensor:
    """``exp(2 pi i k j / (n upsample))`` ``[F, 2 upsample + 1]`` (complex128, CPU): the
    fine steps of :func:`refine`, made once per window length."""
    k = torch.arange(n // 2 + 1, dtype=torch.float64)
    steps = torch.arange(-upsample, upsample + 1, dtype=torch.float64) / upsample
    return torch.polar(torch.ones(k.numel(), steps.numel(), dtype=torch.float64),
                       (2 * math.pi / n) * k[:, None] * steps[None, :])


@functools.lru_cache(maxsize=8)
def _hann(window: int) -> torch.Tensor:
    """The periodic Hann window on the CPU, made once per length (long windows cost)."""
    return torch.hann_window(window, periodic=True, dtype=torch.float32)


def weights(s: Spectra, weighting: str) -> torch.Tensor:
    """The weighting ``W`` ``[P, F]`` (real, non-negative) of :data:`WEIGHTINGS`."""
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")
    magnitude = s.ab.abs()
    floor = EPS * magnitude.amax(dim=1, keepdim=True).clamp_min(EPS)
    if weighting == "plain":
        return torch.ones_like(magnitude)
    if weighting == "phat":
        return 1.0 / magnitude.clamp_min(floor)
    if weighting == "scot":
        power = (s.aa * s.bb).sqrt()
        return 1.0 / power.clamp_min(EPS * power.amax(dim=1, keepdim=True).clamp_min(EPS))
    coh = s.coherence.clamp(max=1.0 - 1e-6)
    return coh / ((1.0 - coh) * magnitude.clamp_min(floor))


UPSAMPLE = 8  # correlation points per sample: the inverse transform zero-padded


@dataclass(frozen=True)
class Correlation:
    """``values`` ``[P, L]``: the weighted correlation at ``lags`` ``[L]`` (samples, in
    steps of ``1 / upsample``)."""

    values: torch.Tensor
    lags: torch.Tensor
    upsample: int


def correlate(s: Spectra, weighting: str = "scot", band: torch.Tensor | None = None,
              upsample: int = UPSAMPLE) -> Correlation:
    """The generalised cross-correlation of :func:`spectra`, weighted and, with ``band``
    (bool ``[F]`` or ``[P, F]``), restricted to those frequencies; lags centred on 0.

    The inverse transform is zero-padded ``upsample`` times: the correlation between
    samples is its band-limited interpolation, so whitened weightings (PHAT, SCOT), whose
    peaks are a sample or two wide, are located between samples as well as broad ones."""
    window = 2 * (s.ab.shape[1] - 1)
    n = window * upsample
    x = weighted(s, weighting, band)
    values = torch.fft.fftshift(torch.fft.irfft(x, n=n, dim=1), dim=1) * upsample
    lags = (torch.arange(n, device=values.device, dtype=values.dtype) - n // 2) / upsample
    return Correlation(values=values, lags=lags, upsample=upsample)


def weighted(s: Spectra, weighting: str = "scot",
             band: torch.Tensor | None = None) -> torch.Tensor:
    """The weighted cross-spectrum ``W G_ab`` ``[P, F]`` (complex), zero outside ``band``:
    what :func:`correlate` transforms and :func:`refine` evaluates between samples."""
    w = weights(s, weighting)
    if band is not None:
        w = w * band.to(w.dtype)
    return w * s.ab


def refine(x: torch.Tensor, around: torch.Tensor, upsample: int = UPSAMPLE
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The correlation of the weighted cross-spectrum ``x`` ``[P, F]`` near ``around``
    (``[P]`` lags in samples, e.g. a coarse peak): evaluated at ``1 / upsample`` steps
    within one sample either side (what a zero-padded inverse transform would give there,
    at a fraction of its cost), then the parabola through the highest point. Returns the
    delay (samples) and the correlation there, ``[P]`` each, on the scale of
    :func:`correlate`.

    ``R(t) = (1 / n) sum_k c_k Re(x_k exp(2 pi i k t / n))`` with ``c_k`` 1 at DC and
    Nyquist and 2 between: the real inverse transform at a fractional lag. The shift to
    ``around`` is one complex product per frequency; the fine steps are one matrix
    product with a table shared by every pair."""
    n = 2 * (x.shape[1] - 1)
    k = torch.arange(x.shape[1], device=x.device, dtype=torch.float64)
    c = torch.full_like(k, 2.0)
    c[0] = c[-1] = 1.0
    real = x.real.dtype
    turn = ((2 * math.pi / n) * k[None, :] * around.double()[:, None]).to(real)  # [P, F]
    shifted = x * torch.polar(torch.ones_like(turn), turn) * c.to(real)[None, :]
    steps = torch.arange(-upsample, upsample + 1, dtype=torch.float64) / upsample  # [J]
    table = _steps_table(n, upsample).to(device=x.device, dtype=x.dtype)  # [F, J]
    values = (shifted @ table).real / n  # [P, J]
    i = values.argmax(dim=1).clamp(1, steps.numel() - 2)
    shift, height = _parabola(values, i)
    delay = around.to(real) + (steps.to(device=x.device, dtype=real)[i] + shift / upsample)
    return delay, height


def _parabola(values: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The parabola through ``values[p, i-1 .. i+1]`` of each row ``[P]``: the offset of its
    top from ``i`` (steps, within half a step) and the height there; at the ends of a row
    the missing neighbour is the point itself."""
    rows = torch.arange(values.shape[0], device=values.device)
    left = values[rows, (i - 1).clamp(min=0)]
    mid = values[rows, i]
    right = values[rows, (i + 1).clamp(max=values.shape[1] - 1)]
    curvature = left - 2 * mid + right
    shift = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-30),
                        torch.zeros_like(mid)).clamp(-0.5, 0.5)
    return shift, mid - 0.25 * (left - right) * shift


@dataclass(frozen=True)
class Peak:
    """Per pair ``[P]``: the delay in samples (between samples: the upsampled correlation,
    then a parabola through its highest point), the correlation there, and ``quality``: how
    far the peak stands out of the correlation away from it (independent noise: about 2.3)."""

    delay: torch.Tensor
    height: torch.Tensor
    quality: torch.Tensor


def peak(c: Correlation, max_lag: float | None = None) -> Peak:
    """The highest correlation of each pair within ``|lag| <= max_lag`` samples (all lags
    when ``None``), refined by the parabola through it and its two neighbours."""
    values = c.values
    allowed = torch.ones_like(c.lags, dtype=torch.bool) if max_lag is None else \
        c.lags.abs() <= max_lag
    masked = values.masked_fill(~allowed[None, :], float("-inf"))
    i = masked.argmax(dim=1)  # [P]
    shift, _ = _parabola(values, i)
    mid = values[torch.arange(values.shape[0], device=values.device), i]
    delay = c.lags[i] + shift / c.upsample
    # how far the peak stands above the correlation away from it (beyond 4 samples), in
    # units of that correlation's spread (its 95th percentile above its median)
    away = torch.where((c.lags[None, :] - c.lags[i][:, None]).abs() > 4, values, torch.nan)
    level = away.nanmedian(dim=1).values
    spread = (away.nanquantile(0.95, dim=1) - level).clamp_min(1e-30)
    return Peak(delay=delay, height=mid, quality=(mid - level) / spread)
