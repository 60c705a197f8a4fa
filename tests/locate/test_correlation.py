"""Generalised cross-correlation (locate/correlation.py): known delays recovered, to the
sample and between samples, with the sign the position formula expects; pairs batched;
independent noise stands out as noise; bad input is one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leakhunter.errors import ConfigError
from leakhunter.locate import correlation as cc
from leakhunter.locate import wave_speed as ws

N, MARGIN, RATE = 16384, 2000, 8192.0


def _pair(delay: int, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``a`` is ``b`` delayed by ``delay`` samples (A hears the source later), each with
    independent sensor noise of ``noise`` times the source's level."""
    rng = np.random.default_rng(seed)
    s = rng.standard_normal(N + 2 * MARGIN)
    b = s[MARGIN:MARGIN + N] + noise * rng.standard_normal(N)
    a = s[MARGIN - delay:MARGIN - delay + N] + noise * rng.standard_normal(N)
    return a, b


def _batch(*pairs: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(np.stack([p[0] for p in pairs])),
            torch.tensor(np.stack([p[1] for p in pairs])))


@pytest.mark.parametrize("weighting", cc.WEIGHTINGS)
def test_known_delays_to_the_sample_in_one_batch(weighting: str) -> None:
    delays = [37, -120, 0, 300]
    a, b = _batch(*(_pair(d, noise=1.0 if i % 2 else 0.0, seed=i)
                    for i, d in enumerate(delays)))
    p = cc.peak(cc.correlate(cc.spectra(a, b, 1024, RATE), weighting))
    assert p.delay.tolist() == pytest.approx(delays, abs=0.05)
    assert (p.quality > 10).all()
    # each pair alone gives what it gave in the batch
    alone = cc.peak(cc.correlate(cc.spectra(a[1:2], b[1:2], 1024, RATE), weighting))
    assert alone.delay.item() == pytest.approx(p.delay[1].item(), abs=1e-6)


@pytest.mark.parametrize("weighting", cc.WEIGHTINGS)
def test_delays_between_samples(weighting: str) -> None:
    x = np.fft.rfft(np.random.default_rng(1).standard_normal(N))
    f = np.fft.rfftfreq(N)
    x[f > 0.2] = 0  # band-limited, as pipe noise is
    for delay in (10.25, 10.5, 9.7, -3.125):
        a = np.fft.irfft(x * np.exp(-2j * np.pi * f * delay), n=N)
        b = np.fft.irfft(x, n=N)
        s = cc.spectra(torch.tensor(a)[None], torch.tensor(b)[None], 2048, RATE)
        band = s.freqs < 0.19 * RATE  # where there is sound: the band coherence would pick
        assert cc.peak(cc.correlate(s, weighting, band)).delay.item() == pytest.approx(
            delay, abs=0.02)


def test_the_sign_puts_a_leak_near_a_below_mid_span() -> None:
    distance, speed = 200.0, 1250.0
    leak = 50.0  # nearer A: A hears it first
    lead = round((distance - 2 * leak) / speed * RATE)  # samples by which A is earlier
    a, b = _batch(_pair(-lead))
    delay = cc.peak(cc.correlate(cc.spectra(a, b, 4096, RATE))).delay.item() / RATE
    assert delay < 0
    assert ws.position(delay, distance, speed) == pytest.approx(leak, abs=0.1)


def test_independent_noise_does_not_stand_out() -> None:
    rng = np.random.default_rng(5)
    a, b = torch.tensor(rng.standard_normal((4, N))), torch.tensor(rng.standard_normal((4, N)))
    for weighting in cc.WEIGHTINGS:
        quality = cc.peak(cc.correlate(cc.spectra(a, b, 1024, RATE), weighting)).quality
        assert (quality < 4).all(), (weighting, quality)


def test_a_peak_beyond_the_largest_possible_delay_is_not_taken() -> None:
    a, b = _batch(_pair(300))
    p = cc.peak(cc.correlate(cc.spectra(a, b, 1024, RATE)), max_lag=100)
    assert abs(p.delay.item()) <= 100 and p.quality.item() < 4


def test_coherence_of_a_shared_source() -> None:
    a, b = _batch(_pair(5), _pair(5, noise=1.0, seed=1))
    coh = cc.spectra(a, b, 1024, RATE).coherence
    assert ((coh >= 0) & (coh <= 1)).all()
    # 0 dB of noise at each sensor: coherence (1 / (1 + 1))**2 = 0.25, less Welch bias
    assert coh[0, 10:400].mean() > 0.95 and 0.2 < coh[1, 10:400].mean() < 0.33


def test_bad_input_is_one_clear_error() -> None:
    a = torch.zeros(2, 1000)
    with pytest.raises(ConfigError, match="one shape"):
        cc.spectra(a, torch.zeros(2, 999), 256, RATE)
    with pytest.raises(ConfigError, match="at least that long"):
        cc.spectra(a, a, 2048, RATE)
    s = cc.spectra(torch.randn(1, 4096), torch.randn(1, 4096), 512, RATE)
    with pytest.raises(ConfigError, match="unknown weighting 'roth'; known: plain, phat"):
        cc.correlate(s, "roth")


@pytest.mark.parametrize("windows", [3, 19, 3 * cc.ACCUMULATE_STEPS + 5])
def test_the_averages_window_by_window_equal_one_reduction(windows: int) -> None:
    """The CPU's accumulation (a window, or a few, at a time) and the GPU's single
    reduction give the Welch averages by their definition, equally or weighted."""
    gen = torch.Generator().manual_seed(windows)
    fa, fb = (torch.randn(3, windows, 65, dtype=torch.complex64, generator=gen)
              for _ in range(2))
    share = torch.rand(3, windows, generator=gen)
    for weights in (None, share / share.sum(dim=1, keepdim=True)):
        w = (torch.full((3, windows), 1.0 / windows) if weights is None else weights)[..., None]
        expected = ((fa.abs() ** 2 * w).sum(1), (fb.abs() ** 2 * w).sum(1),
                    (fa * fb.conj() * w).sum(1))
        for by_window in (True, False):
            got = cc.averages(fa, fb.conj().resolve_conj(), weights, by_window)
            for g, e in zip(got, expected):
                assert torch.allclose(g, e, atol=1e-5), (by_window, weights is None)


def test_offsets_and_drifts_are_removed_before_the_spectra() -> None:
    """A sensor's DC offset and linear drift would be a coherent tone in the lowest bins:
    the spectra remove each recording's line first, as remove_trend does in numpy."""
    from leakhunter.recordings.audio import remove_trend

    a, b = _batch(_pair(40, noise=0.5), _pair(-7, noise=0.5, seed=3))
    ramp = torch.linspace(0.0, 3.0, N, dtype=a.dtype)
    clean, drifting = cc.spectra(a, b, 1024, RATE), cc.spectra(a + 2 + ramp, b - 1, 1024, RATE)
    assert torch.allclose(drifting.aa, clean.aa, rtol=1e-3, atol=1e-6)
    assert torch.allclose(drifting.ab, clean.ab, rtol=1e-3, atol=1e-6)
    rows = [torch.from_numpy(np.float32(3.0) + x.astype(np.float32)) for x in a.numpy()]
    stacked = cc.stack_without_lines(rows)
    assert torch.allclose(stacked, cc.remove_line(torch.stack(rows)), atol=1e-6)
    assert np.allclose(stacked[1].numpy(), remove_trend(rows[1].numpy()), atol=1e-5)


@pytest.mark.parametrize("window", [2048, 2000])  # a power of two and not
def test_refine_finds_delays_between_samples_for_two_peaks_at_once(window: int) -> None:
    """refine evaluates the weighted cross-spectrum between samples near whole-sample lags
    (any window length), for several places per pair in one call, over all frequencies or
    only the band's span: one answer."""
    x = np.fft.rfft(np.random.default_rng(2).standard_normal(N))
    f = np.fft.rfftfreq(N)
    x[(f < 0.01) | (f > 0.2)] = 0
    delays = (10.3, -33.6)
    a = np.stack([np.fft.irfft(x * np.exp(-2j * np.pi * f * d), n=N) for d in delays])
    b = np.stack([np.fft.irfft(x, n=N)] * 2)
    s = cc.spectra(torch.tensor(a), torch.tensor(b), window, RATE)
    band = (s.freqs > 0.011 * RATE) & (s.freqs < 0.19 * RATE)
    w = cc.weighted(s, "scot", band)
    near = torch.tensor([[10.0, -34.0], [12.0, -31.0]])  # [2 places, 2 pairs]
    whole, _ = cc.refine(w, near)
    held = band.nonzero()
    spanned, _ = cc.refine(w, near, span=(int(held[0]), int(held[-1]) + 1))
    assert whole.shape == (2, 2) and torch.allclose(whole, spanned, atol=1e-4)
    assert whole[0].tolist() == pytest.approx(delays, abs=0.02)  # from within a sample
