"""From pairs to positions (leakhunter.locate.estimate): the position and its sign, the
interval, the statuses (located, outside, no correlation), the window, and the tensor work
on a device other than the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leakhunter.config import LocateConfig, PairSynthConfig
from leakhunter.errors import ConfigError
from leakhunter.locate.estimate import (
    LOCATED,
    NO_CORRELATION,
    OUTSIDE,
    locate_batch,
    measure,
    window_samples,
)
from leakhunter.locate.measures import moving_average, robust_spread
from leakhunter.locate.synth_pairs import make_pair
from leakhunter.locate.wave_speed import WaveSpeed, for_material
from leakhunter.runtime import devices

from ..helpers.cuda import FakeCuda

RATE = 4096
LEAKS = PairSynthConfig(count=6, sample_rate=RATE, duration_s=8.0,
                        materials=("steel", "pvc"), span_m=(60.0, 150.0), snr_db=(0.0, 6.0),
                        no_leak_share=0.0, interference_share=0.0)
CFG = LocateConfig()


def run(pairs: list, speeds: list[WaveSpeed], cfg: LocateConfig = CFG):
    """Locate generated pairs (one batch per pair: their windows differ)."""
    out = []
    for p, v in zip(pairs, speeds):
        d = p.truth["distance_m"]
        window = window_samples(d, v.low, RATE, p.a.size, cfg)
        a, b = torch.from_numpy(p.a)[None], torch.from_numpy(p.b)[None]
        out.append(locate_batch(a, b, RATE, [d], [v], cfg, window)[0][0])
    return out


def given(p) -> WaveSpeed:
    c = p.truth["wave_speed_m_s"]
    return WaveSpeed(c, c, c, "given")


def test_leaks_are_placed_within_two_percent_on_the_right_side() -> None:
    pairs = [make_pair(LEAKS, i) for i in range(LEAKS.count)]
    for p, loc in zip(pairs, run(pairs, [given(p) for p in pairs])):
        d, x = p.truth["distance_m"], p.truth["leak_position_m"]
        assert loc.status == LOCATED, loc.reason
        assert abs(loc.position_m - x) < 0.02 * d
        # the sign: a leak nearer A reaches A first, tau < 0, and lies under mid-span
        assert (loc.delay_s < 0) == (x < d / 2) == (loc.position_m < d / 2)
        assert loc.low_m <= x <= loc.high_m
        assert loc.quality > 10 and 0 < loc.coherence <= 1 and loc.band_hz is not None


def test_the_interval_widens_with_the_materials_range_of_speeds() -> None:
    p = make_pair(LEAKS, 0)
    exact = run([p], [given(p)])[0]
    ranged = run([p], [for_material(p.truth["material"])])[0]
    assert ranged.high_m - ranged.low_m > 2 * (exact.high_m - exact.low_m)
    assert ranged.speed_low_m_s < ranged.wave_speed_m_s < ranged.speed_high_m_s


def test_a_source_beyond_an_end_is_outside() -> None:
    cfg = PairSynthConfig(count=2, sample_rate=RATE, duration_s=8.0, materials=("steel",),
                          span_m=(80.0, 120.0), no_leak_share=1.0, interference_share=1.0,
                          interference_db=(10.0, 10.0))
    pairs = [make_pair(cfg, i) for i in range(2)]
    for p, loc in zip(pairs, run(pairs, [for_material("steel")] * 2)):
        assert loc.status == OUTSIDE, (loc.status, loc.quality)
        end = "A" if p.truth["interference"] == "beyond A" else "B"
        assert f"{end}'s end" in loc.reason


def test_independent_noise_has_no_correlation() -> None:
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.standard_normal((4, 8 * RATE)).astype(np.float32))
    b = torch.from_numpy(rng.standard_normal((4, 8 * RATE)).astype(np.float32))
    speed = for_material("pvc")
    window = window_samples(150.0, speed.low, RATE, a.shape[1], CFG)
    locs, _ = locate_batch(a, b, RATE, [150.0] * 4, [speed] * 4, CFG, window)
    for loc in locs:
        assert loc.status == NO_CORRELATION and loc.position_m is None
        assert loc.quality < CFG.min_quality and "peak quality" in loc.reason


def test_the_window_holds_the_largest_delay_and_says_when_it_cannot() -> None:
    window = window_samples(200.0, 400.0, RATE, 20 * RATE, CFG)  # largest delay 0.5 s
    assert window == 8192 and window & (window - 1) == 0  # 4 x 0.5 s = 2 s
    # largest delay 0.286 s: 4 of them fit 2 s; in 3 s of recording, 1 s (3.5 delays) does
    assert window_samples(100.0, 350.0, RATE, 20 * RATE, CFG) == 2 * RATE
    assert window_samples(100.0, 350.0, RATE, 3 * RATE, CFG) == RATE
    with pytest.raises(ConfigError, match="hold fewer than 3 windows"):
        window_samples(200.0, 400.0, RATE, 3 * RATE, CFG)
    with pytest.raises(ConfigError, match="cannot hold delays of up to 0.50 s"):
        window_samples(200.0, 400.0, RATE, 20 * RATE, LocateConfig(window_s=1.0))
    # a fixed window too long for the recordings: the window is what needs longer ones
    with pytest.raises(ConfigError, match="--window 4 needs at least 8.0 s"):
        window_samples(200.0, 400.0, RATE, 6 * RATE, LocateConfig(window_s=4.0))
    with pytest.raises(ConfigError, match="window_s must be a positive number"):
        LocateConfig(window_s=float("inf"))


def test_a_fixed_band_is_used_as_given() -> None:
    p = make_pair(LEAKS, 1)
    loc = run([p], [given(p)], LocateConfig(band_hz=(50.0, 400.0)))[0]
    assert loc.status == LOCATED
    assert 50.0 <= loc.band_hz[0] < 52.0 and 398.0 < loc.band_hz[1] <= 400.0
    # a band too narrow, or above half the sample rate, correlates nothing and says why
    # (this pair's window is 0.5 s: one bin every 2 Hz)
    for band, held in (((10.0, 10.5), "2.0 Hz"), ((5000.0, 9000.0), "0.0 Hz")):
        loc = run([p], [given(p)], LocateConfig(band_hz=band))[0]
        assert loc.status == NO_CORRELATION and loc.position_m is None and loc.window_s == 0.5
        assert loc.reason == (f"--band {band[0]:g},{band[1]:g} holds {held} of this pair's 0 "
                              f"to 2048 Hz; at least 4 Hz are needed")


def test_a_peak_that_cannot_be_measured_is_no_correlation() -> None:
    """A NaN quality (what NaN samples would give, were they not refused on reading) is
    not a located peak: a comparison with NaN is false either way round."""
    p = make_pair(LEAKS, 2)
    a, b = torch.from_numpy(p.a)[None].clone(), torch.from_numpy(p.b)[None]
    a[0, 100] = float("nan")
    d, v = p.truth["distance_m"], given(p)
    loc = locate_batch(a, b, RATE, [d], [v], CFG, window_samples(d, v.low, RATE, a.shape[1],
                                                               CFG))[0][0]
    assert loc.status == NO_CORRELATION and loc.position_m is None


def test_the_tensor_work_stays_on_the_pairs_device(fake_cuda: FakeCuda) -> None:
    """Every tensor is made on the pairs' device: run on the meta device (shapes without
    data), a tensor made on the CPU by mistake fails here as it would on a GPU."""
    a = torch.empty(3, 8 * RATE, device="meta")
    m = measure(a, a.clone(), RATE, [100.0] * 3, [400.0] * 3, CFG, 4096)
    for t in (m.delay, m.sigma, m.quality, m.bandwidth, m.band_low, m.coherence):
        assert t.device.type == "meta" and t.shape == (3,)
    # --device auto keeps locate on the CPU even with a GPU; cuda asks for one by index
    assert devices.resolve("auto", "locate").device == torch.device("cpu")
    assert devices.resolve("cuda", "locate").device == torch.device("cuda", 0)


def test_a_leak_under_a_louder_source_beyond_an_end_is_still_located() -> None:
    """A pump beyond B, four times the leak's power, wins the correlation's peak; the leak
    30 m from A is the strongest peak between the sensors, and is reported."""
    rng = np.random.default_rng(5)
    d, c, n = 100.0, 1300.0, 8 * RATE
    edge, leak = round(d / c * RATE), round((2 * 30.0 - d) / c * RATE)  # samples, t_A - t_B
    pump, hiss = rng.standard_normal(n + 2000), rng.standard_normal(n + 2000)
    # a[k] = b[k - tau] for each source: A hears it tau samples after B
    a = pump[1000 - edge:1000 - edge + n] + 0.5 * hiss[1000 - leak:1000 - leak + n]
    b = pump[1000:1000 + n] + 0.5 * hiss[1000:1000 + n]
    a, b = (x + 0.3 * rng.standard_normal(n) for x in (a, b))
    speed = WaveSpeed(c, c, c, "given")
    window = window_samples(d, c, RATE, n, CFG)
    loc = locate_batch(torch.tensor(a, dtype=torch.float32)[None],
                       torch.tensor(b, dtype=torch.float32)[None], RATE, [d], [speed], CFG,
                       window)[0][0]
    assert loc.status == LOCATED and abs(loc.position_m - 30.0) < 0.5
    assert "a louder correlated sound comes from B's end" in loc.reason


def test_the_noise_statistics_on_the_cpu_are_torchs_nanmedian() -> None:
    """The CPU computes the noise's median and spread row by row with numpy's selection;
    other devices with nanmedian: the same numbers, the lower median of an even count
    included, and nan for a row with nothing kept."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 301, generator=gen)
    keep = torch.rand(4, 301, generator=gen) > 0.3
    keep[1, :] = torch.arange(301) % 2 == 0  # 151 kept: odd
    keep[2, :] = torch.arange(301) < 100  # 100 kept: even, the lower median
    keep[3, :] = False
    level, sigma = robust_spread(x, keep)
    noise = torch.where(keep, x, torch.nan)
    ref_level = noise.nanmedian(dim=1).values
    ref_sigma = 1.4826 * (noise - ref_level[:, None]).abs().nanmedian(dim=1).values
    assert torch.equal(level[:3], ref_level[:3]) and torch.allclose(sigma[:3], ref_sigma[:3])
    assert level[3].isnan() and sigma[3].isnan()


@pytest.mark.parametrize("width", [1, 2, 3, 16, 17, 128])
def test_the_coherence_smoothing_is_a_moving_average(width: int) -> None:
    x = torch.rand(3, 1000, generator=torch.Generator().manual_seed(width))
    pooled = torch.nn.functional.avg_pool1d(x[:, None, :], width, stride=1, padding=width // 2,
                                            count_include_pad=False)[:, 0, :1000]
    # float32 running sums: a mean carries about the rounding of sums of up to F values
    assert torch.allclose(moving_average(x, width), pooled, atol=1e-4)
