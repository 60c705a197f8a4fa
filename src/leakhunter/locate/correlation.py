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
from collections.abc import Sequence
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
        cross = _squared(torch.view_as_real(self.ab))  # |G_ab|^2 without a root
        return (cross / (self.aa * self.bb).clamp_min(floor)).clamp(0.0, 1.0)


def window_count(samples: int, window: int) -> int:
    """How many Welch windows of ``window`` samples at half overlap ``samples`` hold."""
    return (samples - window) // (window // 2) + 1


def spectra(a: torch.Tensor, b: torch.Tensor, window: int, rate: float,
            weights: torch.Tensor | None = None, lines_removed: bool = False) -> Spectra:
    """Welch auto- and cross-spectra of ``a`` and ``b`` (``[P, N]``, same shape), each
    recording's least-squares line (offset and drift) removed first (unless
    ``lines_removed``: :func:`stack_without_lines` did it), Hann windows of ``window``
    samples at half overlap; ``weights`` (``[P, K]``, non-negative, :func:`window_count`
    windows) weight each window's share of the averages."""
    if a.shape != b.shape or a.dim() != 2:
        raise ConfigError(f"pairs must be two [P, N] batches of one shape, not "
                          f"{tuple(a.shape)} and {tuple(b.shape)}")
    if window < 8 or window > a.shape[1]:
        raise ConfigError(f"a window of {window} samples needs recordings at least that long "
                          f"(they hold {a.shape[1]})")
    taper = _hann(window).to(device=a.device, dtype=a.dtype)
    kw = dict(n_fft=window, hop_length=window // 2, window=taper, center=False,
              return_complex=True)
    if not lines_removed:
        a, b = remove_line(a), remove_line(b)
    # torch.stft gives [P, F, K] as a view of [P, K, F] memory: frames first from here on
    fa = torch.stft(a, **kw).transpose(1, 2)
    # B's conjugate, made in place once (a conjugate taken window by window is a copy each)
    fb_conj = torch.stft(b, **kw).transpose(1, 2).conj_physical_()
    freqs = torch.fft.rfftfreq(window, d=1.0 / rate).to(a.device)
    count = fa.shape[1]
    if weights is None:
        share, windows = None, count
    else:
        if weights.shape != (fa.shape[0], count):
            raise ConfigError(f"window weights must be [{fa.shape[0]}, {count}], not "
                              f"{list(weights.shape)}")
        share = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-30)  # [P, K]
        # unequal weights average fewer windows' worth: Kish's effective sample size
        windows = max(1, int(float((1.0 / (share ** 2).sum(dim=1)).min())))
    aa, bb, ab = averages(fa, fb_conj, share, by_window=fa.device.type == "cpu")
    return Spectra(aa=aa, bb=bb, ab=ab, windows=windows, freqs=freqs, step=rate / window)


def averages(fa: torch.Tensor, fb_conj: torch.Tensor, share: torch.Tensor | None = None,
             by_window: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``E|A|^2``, ``E|B|^2`` (real ``[P, F]``) and ``E[A conj(B)]`` (complex ``[P, F]``)
    over the windows of ``fa`` and ``fb_conj`` (``A`` and ``conj(B)``, ``[P, K, F]``
    complex, frequencies contiguous), each window counted by ``share`` ``[P, K]`` (summing
    to 1) or equally.

    ``by_window``: accumulate a window (or a few) at a time into ``[P, F]`` sums (on a CPU
    this reads each spectrum once from memory, where a reduction over ``K`` first writes
    and reads back a product as large as the spectra: half the time); otherwise one
    reduction per average (on a GPU, three kernels instead of many small ones)."""
    count = fa.shape[1]
    if not by_window:
        weight = (torch.full_like(fa[:, :, 0].real, 1.0 / count) if share is None
                  else share)[:, :, None]
        ra, rb = torch.view_as_real(fa), torch.view_as_real(fb_conj)
        return ((_squared(ra) * weight).sum(dim=1), (_squared(rb) * weight).sum(dim=1),
                (fa * fb_conj * weight).sum(dim=1))
    # a few windows per step when there are many: the sums stay small ([P, step, F]) and
    # short windows (many of them) do not cost one small operation each
    step = max(1, count // ACCUMULATE_STEPS)
    ra, rb = torch.view_as_real(fa), torch.view_as_real(fb_conj)  # [P, K, F, 2]
    aa, bb = torch.zeros_like(ra[:, :step]), torch.zeros_like(rb[:, :step])
    ab = torch.zeros_like(fa[:, :step])
    for k in range(0, count, step):
        n = min(step, count - k)
        xa, xb, za, zb = ra[:, k:k + n], rb[:, k:k + n], fa[:, k:k + n], fb_conj[:, k:k + n]
        ya, yb = xa, xb  # the second factor of each product
        if share is not None:  # weighted windows: scale one factor of each product
            w = share[:, k:k + n, None]
            za, xb = za * w, xb * w[..., None]
            xa = torch.view_as_real(za)
        sums = (aa, bb, ab) if n == step else (aa[:, :n], bb[:, :n], ab[:, :n])
        sums[0].addcmul_(xa, ya)
        sums[1].addcmul_(xb, yb)
        sums[2].addcmul_(za, zb)
    if step > 1:
        aa, bb, ab = aa.sum(dim=1), bb.sum(dim=1), ab.sum(dim=1)
    else:
        aa, bb, ab = aa[:, 0], bb[:, 0], ab[:, 0]
    aa, bb = aa[..., 0] + aa[..., 1], bb[..., 0] + bb[..., 1]  # real and imaginary parts
    return (aa / count, bb / count, ab / count) if share is None else (aa, bb, ab)


ACCUMULATE_STEPS = 32  # about how many steps :func:`averages` takes over many windows


def _squared(pairs: torch.Tensor) -> torch.Tensor:
    """``re^2 + im^2`` of ``[..., 2]`` (a complex tensor's real view), ``[...]``: two
    elementwise steps (torch reduces a last dimension of 2 several times slower)."""
    return pairs[..., 0].square().addcmul_(pairs[..., 1], pairs[..., 1])


def remove_line(x: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """``x`` ``[P, N]`` less each row's least-squares line (offset and linear drift), in a
    new tensor or ``in_place``: a DC offset or a drifting sensor would otherwise fill the
    lowest frequencies of every window with a coherent-looking tone. Two passes: the fit as
    one matrix product with the orthogonal basis ``(1, t)`` (centred time), the
    subtraction as another."""
    fit, line = _line_basis(x.shape[1], x.dtype, x.device)
    coef = x @ fit  # [P, 2]: each row's mean and slope
    return x.addmm_(coef, line, alpha=-1) if in_place else torch.addmm(x, coef, line, alpha=-1)


def stack_without_lines(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[P, N]``: the rows (``[N]`` each, one length and device) stacked, their lines
    (:func:`remove_line`) removed in place: no second batch-sized copy (fresh memory costs
    a page fault per 4 KiB the first time a process touches it)."""
    return remove_line(torch.stack(list(rows)), in_place=True)


@functools.lru_cache(maxsize=4)
def _line_basis(n: int, dtype: torch.dtype, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """For :func:`remove_line`, made once per length: ``fit`` ``[N, 2]`` (``x @ fit`` is
    each row's mean and slope) and ``line`` ``[2, N]`` (the basis ``1``, ``t``). Centred
    time is exact in float32 (whole and half samples below 2^24); ``sum t^2`` is
    ``n (n^2 - 1) / 12``."""
    t = torch.arange(n, dtype=dtype, device=device) - (n - 1) / 2.0
    line = torch.stack([torch.ones_like(t), t])
    scale = torch.tensor([1.0 / n, 12.0 / max(n * (n * n - 1), 1)], dtype=torch.float64)
    return (line * scale.to(device=device, dtype=dtype)[:, None]).T, line


@functools.lru_cache(maxsize=8)
def _refine_tables(n: int, upsample: int, dtype: torch.dtype, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`refine` needs for a window of ``n`` samples, made once per window and
    device in ``dtype`` (complex): the ``n`` roots of unity ``exp(2 pi i m / n)`` ``[n]`` and
    the fine steps ``c_k exp(2 pi i k j / (n upsample)) / n`` ``[F, 2 upsample + 1]``
    (``j = -upsample .. upsample``)."""
    real = torch.empty(0, dtype=dtype).real.dtype  # phases within a turn: exact enough
    roots = _unit(((2 * math.pi / n) * torch.arange(n, dtype=torch.float64)).to(real))
    k = torch.arange(n // 2 + 1, dtype=torch.float64)
    c = torch.full_like(k, 2.0 / n)  # the real inverse transform: DC and Nyquist once
    c[0] = c[-1] = 1.0 / n
    steps = torch.arange(-upsample, upsample + 1, dtype=torch.float64) / upsample
    # made [J, F] (a column-wise build is several times slower), used as [F, J]
    phase = ((2 * math.pi / n) * steps[:, None] * k[None, :]).to(real)
    table = c.to(real) * _unit(phase)
    return roots.to(device), table.to(device).T


def _unit(phase: torch.Tensor) -> torch.Tensor:
    """``exp(i phase)``: complex of the phase's dtype (its cosine and sine, cheaper than
    ``torch.polar``)."""
    return torch.complex(phase.cos(), phase.sin())


@functools.lru_cache(maxsize=8)
def _hann(window: int) -> torch.Tensor:
    """The periodic Hann window on the CPU, made once per length (long windows cost)."""
    return torch.hann_window(window, periodic=True, dtype=torch.float32)


def weights(s: Spectra, weighting: str) -> torch.Tensor:
    """The weighting ``W`` ``[P, F]`` (real, non-negative) of :data:`WEIGHTINGS`."""
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")
    if weighting == "plain":
        return torch.ones_like(s.aa)
    if weighting == "scot":
        power = (s.aa * s.bb).sqrt()
        return 1.0 / power.clamp_min(EPS * power.amax(dim=1, keepdim=True).clamp_min(EPS))
    magnitude = s.ab.abs()
    floor = EPS * magnitude.amax(dim=1, keepdim=True).clamp_min(EPS)
    if weighting == "phat":
        return 1.0 / magnitude.clamp_min(floor)
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


def refine(x: torch.Tensor, around: torch.Tensor, upsample: int = UPSAMPLE,
           span: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The correlation of the weighted cross-spectrum ``x`` ``[P, F]`` near ``around``
    (whole-sample lags, rounded: ``[P]``, or ``[M, P]`` for ``M`` places per pair, e.g. a
    coarse peak and a second one): evaluated at ``1 / upsample`` steps within one sample
    either side (what a zero-padded inverse transform would give there, at a fraction of
    its cost), then the parabola through the highest point. Returns the delay (samples)
    and the correlation there, each shaped as ``around``, on the scale of :func:`correlate`.

    ``R(t) = (1 / n) sum_k c_k Re(x_k exp(2 pi i k t / n))`` with ``c_k`` 1 at DC and
    Nyquist and 2 between: the real inverse transform at a fractional lag. The shift to a
    whole lag ``s`` multiplies ``x_k`` by the root of unity ``k s mod n`` (exact integer
    arithmetic, a lookup instead of a sine and cosine per frequency); the fine steps are
    one matrix product with a table shared by every pair. ``span``: ``(first, last + 1)``,
    the frequencies outside which ``x`` is zero for every pair (a band): only those are
    summed."""
    n = 2 * (x.shape[1] - 1)
    roots, table = _refine_tables(n, upsample, x.dtype, x.device)
    lo, hi = span or (0, x.shape[1])
    x, table = x[:, lo:hi], table[lo:hi]
    k = torch.arange(lo, hi, device=x.device)
    whole = around.round().long()
    turns = whole[..., None] * k  # [..., P, F]
    # a power-of-two window (the default) wraps with a mask, cheaper than a division
    turns = turns.bitwise_and(n - 1) if n & (n - 1) == 0 else turns.remainder(n)
    shifted = x * roots[turns]  # [..., P, F]
    values = (shifted.reshape(-1, hi - lo) @ table).real  # [M P, J]
    i = values.argmax(dim=1).clamp(1, table.shape[1] - 2)
    shift, height = _parabola(values, i)
    real = x.real.dtype
    steps = torch.arange(-upsample, upsample + 1, device=x.device, dtype=real) / upsample
    delay = whole.to(real) + (steps[i] + shift / upsample).reshape(whole.shape)
    return delay, height.reshape(whole.shape)


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
