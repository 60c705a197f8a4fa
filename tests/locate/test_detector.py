"""Windows weighted by the detector (leakhunter.locate.detector and ``locate --model``):
the weights follow the timelines, weighted windows decide the delay, and the command runs
a real model over the recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from leakhunter.cli import main
from leakhunter.config import PairSynthConfig
from leakhunter.locate.correlation import correlate, peak, spectra, window_count
from leakhunter.locate.detector import FLOOR, Timeline, window_weights
from leakhunter.locate.synth_pairs import synthesize_pairs

RATE = 4096


def shifted(rng: np.random.Generator, n: int, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """A source heard ``delay`` samples later at A than at B, with a little sensor noise."""
    s = rng.standard_normal(n + delay)
    return (s[:n] + 0.3 * rng.standard_normal(n), s[delay:delay + n] + 0.3 *
            rng.standard_normal(n))


def test_weighted_windows_decide_which_source_is_found() -> None:
    """First half: a source 40 samples late at A; second half: one 40 samples late at B.
    Weighting either half picks that half's delay."""
    rng = np.random.default_rng(0)
    half = 8 * 1024
    a1, b1 = shifted(rng, half, 40)
    b2, a2 = shifted(rng, half, 40)
    a = torch.tensor(np.concatenate([a1, a2]), dtype=torch.float32)[None]
    b = torch.tensor(np.concatenate([b1, b2]), dtype=torch.float32)[None]
    window = 1024
    k = window_count(a.shape[1], window)
    first = torch.tensor([[1.0 if i < k // 2 else 0.0 for i in range(k)]])
    for weights, expected in ((first, 40), (1 - first, -40)):
        s = spectra(a, b, window, RATE, weights)
        found = peak(correlate(s, "scot"), max_lag=200)
        assert abs(found.delay.item() - expected) < 0.5
        assert s.windows < k  # fewer windows' worth: the band's noise floor knows it
    with pytest.raises(Exception, match="window weights must be"):
        spectra(a, b, window, RATE, first[:, :3])


def test_weights_follow_both_timelines() -> None:
    starts = np.arange(40) * 0.125  # 0.25 s segments at half overlap over 5 s
    loud_late = Timeline(starts, np.where(starts >= 2.5, 1.0, 0.0), 0.25)
    everywhere = Timeline(starts, np.ones(40), 0.25)
    w = window_weights(loud_late, everywhere, (0.0, 0.0), 9, RATE, RATE)  # 1 s windows
    assert w[0] == pytest.approx(FLOOR) and w[-1] == pytest.approx(FLOOR + 1.0)
    assert np.all(np.diff(w) >= 0)  # more of each window is leak-like as time goes on
    # dropping A's first 2.625 s (B started later) brings its loud part to the start
    shifted_w = window_weights(loud_late, everywhere, (2.625, 0.0), 4, RATE, RATE)
    assert shifted_w[0] == pytest.approx(FLOOR + 1.0)
    # one sensor hearing nothing: the floor everywhere, i.e. the plain average
    quiet = Timeline(starts, np.zeros(40), 0.25)
    assert np.allclose(window_weights(quiet, everywhere, (0.0, 0.0), 9, RATE, RATE), FLOOR)


def test_locate_with_a_model_weights_and_says_so(trained_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    synthesize_pairs(tmp_path / "p", PairSynthConfig(
        count=2, sample_rate=RATE, duration_s=6.0, materials=("steel",), span_m=(60.0, 90.0),
        snr_db=(3.0, 6.0), no_leak_share=0.0, interference_share=0.0))
    out = tmp_path / "locations.csv"
    assert main(["locate", "--pairs", str(tmp_path / "p" / "pairs.csv"), "--out", str(out),
                 "--model", str(trained_run / "best.pt"), "--workers", "1"]) == 0
    said = capsys.readouterr().out
    assert "weighting windows by" in said and "located 2 pairs (2 located)" in said
    text = out.read_text()
    assert text.count("windows weighted by the detector (mean leak probability A ") == 2
