"""Site-robust augmentation: training inputs changed the way another site changes them.

A model trained at one site learns that site's levels and spectra along with its leaks:
at a site with other pipes, sensors and traffic its leak probabilities fall, and most leaks
are missed (the README's *New sites*). Each augmentation below changes a training segment's
log-mel ``[M, F]`` (dB, before the model's normalisation) as such a move would, one random
draw per segment, so the model must find the leak in what stays:

* ``gain``: a constant of -10..+10 dB (another sensor gain, another distance to the leak);
* ``tilt``: a straight line of -12..+12 dB across the mel bands (another background colour,
  another frequency response);
* ``warp``: the mel axis stretched or squeezed by a factor of 1/2.5..2.5 around its
  lowest band (another pipe's pass band: leak noise in plastic pipes lives lower);
* ``floor``: to half of the segments, a stationary noise floor added in power, -25..+5 dB
  re the segment's mean level, with its own tilt of -12..+12 dB (a noisier sensor, a
  louder street).

Measured on generated sites (``benchmarks/new_site.py``, README): trained on site A, these
four with the pooled head (:class:`leakhunter.config.ModelConfig` ``pool``) and a mel range
fitted to the recordings took site B's per-recording accuracy from 0.51-0.67 to 0.99-1.00
(AUC from 0.75-0.90 to 0.999-1.000) at 1.17x the training time; without the augmentation
site B fell to 0.855 (seed 0). Every draw comes from the trainer's augmentation generator, on the
CPU, so a resumed run continues the same sequence.
"""

from __future__ import annotations

import math

import torch

GAIN_DB = 10.0
TILT_DB = 12.0
WARP = 2.5
FLOOR_DB = (-25.0, 5.0)
FLOOR_SHARE = 0.5


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def augment(x: torch.Tensor, names: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """``x`` ``[B, M, F]`` (log-mel, dB) with the augmentations ``names`` applied in the
    order gain, tilt, warp, floor; random numbers drawn from ``gen`` on the CPU, the work
    done where ``x`` is. Returns a new tensor; ``x`` is not changed."""
    b, m, f = x.shape
    dev = x.device
    ramp = torch.linspace(-0.5, 0.5, m, device=dev)[None, :, None]  # [1, M, 1]
    if "gain" in names:
        x = x + _uniform(b, -GAIN_DB, GAIN_DB, gen).to(dev)[:, None, None]
    if "tilt" in names:
        x = x + _uniform(b, -TILT_DB, TILT_DB, gen).to(dev)[:, None, None] * ramp
    if "warp" in names:
        x = warp(x, torch.exp(_uniform(b, -math.log(WARP), math.log(WARP), gen)).to(dev))
    if "floor" in names:
        level = x.mean(dim=(1, 2), keepdim=True) + _uniform(b, *FLOOR_DB, gen).to(dev)[
            :, None, None]
        floor = level + _uniform(b, -TILT_DB, TILT_DB, gen).to(dev)[:, None, None] * ramp
        on = (torch.rand(b, generator=gen) < FLOOR_SHARE).to(dev)[:, None, None]
        # power sum in dB, as 10 log10(10^(x/10) + 10^(floor/10)) but without overflow
        mixed = torch.logaddexp(x * (math.log(10) / 10), floor * (math.log(10) / 10)) \
            * (10 / math.log(10))
        x = torch.where(on, mixed, x)
    return x


def warp(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, M, F]`` with band ``i`` of segment ``b`` taken from band
    ``i / factor[b]`` (linear interpolation, clamped to the top band): a factor above 1
    moves content up, below 1 down."""
    b, m, f = x.shape
    pos = (torch.arange(m, device=x.device, dtype=x.dtype)[None, :]
           / factor[:, None].to(x.dtype)).clamp(0, m - 1)  # [B, M]
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    w = (pos - lo.to(x.dtype))[:, :, None]
    return (torch.gather(x, 1, lo[:, :, None].expand(b, m, f)) * (1 - w)
            + torch.gather(x, 1, hi[:, :, None].expand(b, m, f)) * w)
