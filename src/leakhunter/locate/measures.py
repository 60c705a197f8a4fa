"""What a correlation's peak is measured against, and how wide it is.

* :class:`Noise`: the correlation at lags no source between or beyond the sensors can
  produce (beyond the search range), its median and robust spread (:func:`robust_spread`),
  each lag first scaled by the spread independent noise has there (:func:`noise_profile`:
  Welch windows overlap less at long lags); a peak's quality is its height above that in
  robust standard deviations.
* :func:`half_width`: where a peak falls to half its height.
* :func:`moving_average`: the smoothing of the coherence before the band is chosen.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .correlation import Correlation


def moving_average(x: torch.Tensor, width: int) -> torch.Tensor:
    """The mean of ``x`` ``[P, F]`` over ``width`` neighbours along ``F``: bins
    ``f - width // 2 .. f - width // 2 + width - 1``, fewer at the ends (the mean of those
    there). From running sums, so its cost does not grow with ``width``; in ``x``'s dtype,
    as a window's sum only carries the rounding of its own ``width`` additions (for
    coherences, sums of at most ``F``: errors far below the band's threshold)."""
    if width == 1:
        return x
    f = x.shape[1]
    left = width // 2
    padded = torch.nn.functional.pad(x, (left, width - 1 - left))
    sums = torch.nn.functional.pad(padded.cumsum(dim=1), (1, 0))  # [P, F + width]
    start = torch.arange(f, device=x.device) - left
    counts = (start + width).clamp(max=f) - start.clamp(min=0)
    return (sums[:, width:] - sums[:, :f]) / counts


@dataclass(frozen=True)
class Noise:
    """The correlation at lags beyond the search range, where no source between or beyond
    the sensors can be: its median ``level`` and robust spread ``sigma`` ``[P]``, each lag
    first scaled by ``profile`` (:func:`noise_profile`), over the lags ``lags``."""

    profile: torch.Tensor
    lags: torch.Tensor
    level: torch.Tensor
    sigma: torch.Tensor

    @staticmethod
    def of(corr: Correlation, search: torch.Tensor, window: int) -> Noise:
        # Welch windows overlap less at long lags, so the correlation of independent noise
        # varies less there: each lag is scaled by that spread first
        profile = noise_profile(window, corr)
        beyond = corr.lags[None, :].abs() > search[:, None]
        noise = corr.values / profile[None, :]
        level, sigma = robust_spread(noise, beyond)
        return Noise(profile, corr.lags, level, sigma)

    def quality(self, height: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
        """A peak's height above the noise, in robust standard deviations of it (shaped as
        ``height``, ``[..., P]``), measured in the spread at the peak's own lag (the first
        lag at or after it)."""
        first, step = self.lags[0], self.lags[1] - self.lags[0]
        at = ((delay - first) / step).ceil().long().clamp(0, self.lags.numel() - 1)
        return (height / self.profile[at] - self.level) / self.sigma.clamp_min(1e-30)


def robust_spread(x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The median and ``1.4826 x`` the median absolute deviation ``[P]`` of each row of
    ``x`` ``[P, L]`` over the entries ``keep`` (bool ``[P, L]``); the lower median of an
    even count, as :meth:`torch.Tensor.nanmedian` takes it (nan without any entry kept).

    On the CPU numpy's selection does it row by row, several times faster than torch's
    median there; elsewhere two ``nanmedian`` calls over the whole batch."""
    if x.device.type != "cpu":
        noise = torch.where(keep, x, torch.nan)
        level = noise.nanmedian(dim=1).values
        return level, 1.4826 * (noise - level[:, None]).abs().nanmedian(dim=1).values
    rows, mask = x.numpy(), keep.numpy()
    out = np.full((2, rows.shape[0]), np.nan, dtype=rows.dtype)
    for p, (row, kept) in enumerate(zip(rows, mask)):
        values = row[kept]
        if values.size:
            middle = (values.size - 1) // 2
            out[0, p] = np.partition(values, middle)[middle]
            out[1, p] = 1.4826 * np.partition(np.abs(values - out[0, p]), middle)[middle]
    return torch.from_numpy(out[0]), torch.from_numpy(out[1])


def noise_profile(window: int, corr: Correlation) -> torch.Tensor:
    """The standard deviation of the correlation of independent white noise at each lag of
    ``corr``, relative to lag 0: ``sqrt(sum_n w(n)^2 w(n+l)^2)`` for the Hann window ``w``
    (circular, as the transform is). Made on the CPU from the window alone (the lags are
    ``(i - n/2) / upsample``), once per window, then moved to the correlation's device."""
    return _profile(window, corr.upsample).to(device=corr.values.device,
                                              dtype=corr.values.dtype)


@functools.lru_cache(maxsize=8)
def _profile(window: int, upsample: int) -> torch.Tensor:
    """:func:`noise_profile` on the CPU in float64, kept per window and upsampling.

    The periodic Hann window squared is ``sin^4(pi n / W) = 3/8 - cos(t)/2 + cos(2t)/8``
    with ``t = 2 pi n / W``; over a whole period the cosines are orthogonal, so its circular
    autocorrelation at lag ``l`` is proportional to ``18 + 16 cos(p) + cos(2p)``,
    ``p = 2 pi l / W``: 35 at lag 0. Exact at every lag, fractional ones included."""
    n = window * upsample
    phase = (2 * math.pi / window) * (torch.arange(n, dtype=torch.float64) - n // 2) / upsample
    return ((18 + 16 * phase.cos() + (2 * phase).cos()) / 35).sqrt()


HALF_WIDTH_REACH = 2048  # samples either side of a peak searched for its half height


def half_width(values: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Half the width (samples ``[P]``) of each row's peak at index ``centre`` ``[P]`` of
    the whole-sample correlation ``values`` ``[P, L]``: where it first falls below half its
    height on either side, looked for within :data:`HALF_WIDTH_REACH` samples (a peak
    broader than that, a band of a few hertz, counts as that broad)."""
    size = values.shape[1]
    reach = min(HALF_WIDTH_REACH, size)
    offsets = torch.arange(-reach, reach + 1, device=values.device)
    index = centre[:, None] + offsets  # [P, 2 reach + 1]
    near = values.gather(1, index.clamp(0, size - 1))
    top = values.gather(1, centre[:, None])
    below = (near < top / 2) | (index < 0) | (index >= size)  # past an end: no more peak
    right = torch.where(below & (offsets > 0), offsets, reach).amin(dim=1)
    left = torch.where(below & (offsets < 0), offsets, -reach).amax(dim=1)
    return (right - left).to(values.dtype) / 2
