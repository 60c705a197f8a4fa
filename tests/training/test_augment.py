"""Site-robust augmentation (training/augment.py): each change does what another site does
to a log-mel, draws come from the generator alone, and train applies them by default."""

from __future__ import annotations

import math

import pytest
import torch

from leakhunter.config import AUGMENTS, TrainConfig
from leakhunter.errors import ConfigError
from leakhunter.training import augment as aug


def _mel(b: int = 64, m: int = 32, f: int = 7) -> torch.Tensor:
    return torch.randn(b, m, f, generator=torch.Generator().manual_seed(0)) * 5 - 40


def test_gain_adds_one_constant_per_segment() -> None:
    x = _mel()
    y = aug.augment(x, ("gain",), torch.Generator().manual_seed(1))
    shift = y - x
    per_segment = shift.flatten(1)
    assert torch.allclose(per_segment, per_segment[:, :1].expand_as(per_segment), atol=1e-5)
    assert per_segment[:, 0].abs().max() <= aug.GAIN_DB
    assert per_segment[:, 0].std() > 1.0  # drawn per segment, not one for the batch


def test_tilt_is_a_straight_line_across_bands() -> None:
    x = _mel()
    shift = aug.augment(x, ("tilt",), torch.Generator().manual_seed(1)) - x
    assert torch.allclose(shift[:, :, 0], shift[:, :, -1], atol=1e-5)  # same in every frame
    steps = shift[:, 1:, 0] - shift[:, :-1, 0]
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), atol=1e-4)
    assert (shift[:, -1, 0] - shift[:, 0, 0]).abs().max() <= 2 * aug.TILT_DB * 0.5 + 1e-4


def test_warp_moves_a_band_by_its_factor() -> None:
    x = torch.full((2, 32, 3), -80.0)
    x[:, 8] = 0.0  # one loud band
    y = aug.warp(x, torch.tensor([2.0, 0.5]))
    assert int(y[0, :, 0].argmax()) == 16  # up: band i takes band i / 2
    assert int(y[1, :, 0].argmax()) == 4  # down
    assert torch.equal(aug.warp(x, torch.ones(2)), x)


def test_floor_only_raises_and_spares_about_half() -> None:
    x = _mel(b=400)
    y = aug.augment(x, ("floor",), torch.Generator().manual_seed(2))
    assert (y >= x - 1e-4).all()  # power added: nothing gets quieter
    changed = (y - x).flatten(1).abs().amax(dim=1) > 1e-3
    assert 0.35 < changed.float().mean() < 0.65
    # the floor never exceeds its level (+5 dB re the mean) plus the segment's own power
    ceiling = 10 * torch.log10(10 ** (x / 10) + 10 ** ((x.mean(dim=(1, 2), keepdim=True)
                                                         + 5 + aug.TILT_DB / 2) / 10))
    assert (y <= ceiling + 1e-3).all()


def test_draws_come_from_the_generator_alone() -> None:
    x = _mel()
    a = aug.augment(x, AUGMENTS, torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global RNG (dropout's) must not matter
    b = aug.augment(x, AUGMENTS, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, aug.augment(x, AUGMENTS, torch.Generator().manual_seed(6)))
    assert torch.isfinite(a).all() and not torch.equal(a, x)


def test_default_and_validation() -> None:
    assert TrainConfig().augment == AUGMENTS
    with pytest.raises(ConfigError, match="augment takes gain, tilt, warp, floor"):
        TrainConfig(augment=("pitch",))
    assert TrainConfig(augment=()).augment == ()
    assert math.isclose(aug.WARP, 2.5)
