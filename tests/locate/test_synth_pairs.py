"""Generated sensor pairs (leakhunter.locate.synth_pairs): exact delays, exact SNRs, the
loss model's colour, interference from beyond an end, the files, and the CLI."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.cli import main
from leakhunter.config import PairSynthConfig
from leakhunter.errors import ConfigError, InputError
from leakhunter.locate.synth_pairs import (
    PAIRS_COLUMNS,
    SENSORS_COLUMNS,
    make_pair,
    synthesize_pairs,
    transfer,
)
from leakhunter.locate.wave_speed import position
from leakhunter.recordings.audio import parse_name

RATE = 4096
CLEAN = PairSynthConfig(count=4, sample_rate=RATE, duration_s=1.5, materials=("steel",),
                        span_m=(60.0, 200.0), snr_db=(30.0, 30.0), no_leak_share=0.0,
                        interference_share=0.0)


def lag(a: np.ndarray, b: np.ndarray) -> int:
    """Samples by which ``a`` lags ``b`` (t_A - t_B): the peak of the full cross-correlation
    sum_k a[k + l] b[k], computed by FFT."""
    n = a.size
    size = 2 * n
    r = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    r = np.concatenate([r[-(n - 1):], r[:n]])
    return int(np.argmax(r)) - (n - 1)


def band_share(x: np.ndarray, above_hz: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2  # Hann: no leakage upwards
    freqs = np.fft.rfftfreq(x.size, 1.0 / RATE)
    return float(spec[freqs > above_hz].sum() / spec.sum())


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def test_the_delay_is_exact_and_its_sign_says_which_sensor_hears_first() -> None:
    seen_nearer_a = False
    for i in range(CLEAN.count):
        pair = make_pair(CLEAN, i)
        t = pair.truth
        span, x, c = t["distance_m"], t["leak_position_m"], t["wave_speed_m_s"]
        expected = ((x - (span - x)) / c) * RATE
        assert t["delay_s"] * RATE == pytest.approx(expected)
        assert abs(lag(pair.a.astype(float), pair.b.astype(float)) - round(expected)) <= 1
        assert position(t["delay_s"], span, c) == pytest.approx(x)
        if x < span / 2:  # nearer A: A hears it first, tau < 0, position < D/2
            seen_nearer_a = True
            assert t["delay_s"] < 0 and lag(pair.a, pair.b) < 0
    assert seen_nearer_a


def test_the_snr_is_what_the_truth_says() -> None:
    cfg = replace(CLEAN, snr_db=(-12.0, 6.0), interference_share=1.0, materials=("pvc",))
    for i in range(3):
        pair = make_pair(cfg, i, keep_parts=True)
        for k, side in enumerate("ab"):
            leak, noise = pair.parts["leak"][k], pair.parts["noise"][k]
            measured = 20 * np.log10(rms(leak) / rms(noise))
            assert measured == pytest.approx(pair.truth[f"snr_{side}_db"], abs=0.5)
        total = sum(p[0] for p in pair.parts.values())
        np.testing.assert_allclose(pair.a, total, atol=1e-6)
        assert max(np.abs(pair.a).max(), np.abs(pair.b).max()) == pytest.approx(0.5, rel=1e-6)


def test_plastic_loses_more_high_frequencies_than_steel() -> None:
    shares = {}
    for name in ("steel", "pe"):
        cfg = replace(CLEAN, materials=(name,), span_m=(150.0, 150.0))
        pair = make_pair(cfg, 0, keep_parts=True)
        far = 0 if pair.truth["leak_position_m"] > 75.0 else 1  # the sensor farther away
        shares[name] = band_share(pair.parts["leak"][far], 200.0)
    assert shares["steel"] > 0.2
    assert shares["pe"] < 1e-3 * shares["steel"]
    # the model itself: -8.686 * beta * 2 pi f d / c dB, floored at -120 dB
    h = transfer(np.array([0.0, 100.0, 1e5]), 100.0, 400.0, 0.03)
    assert abs(h[0]) == 1.0
    assert 20 * np.log10(abs(h[1])) == pytest.approx(-8.686 * 0.03 * 2 * np.pi * 25.0, rel=1e-3)
    assert 20 * np.log10(abs(h[2])) == pytest.approx(-120.0)
    assert np.angle(h[1]) == pytest.approx(np.angle(np.exp(-2j * np.pi * 25.0)))


def test_interference_from_beyond_b_peaks_at_plus_span_over_speed() -> None:
    cfg = replace(CLEAN, no_leak_share=1.0, interference_share=1.0,
                  interference_db=(20.0, 20.0), count=20)
    found = {}
    for i in range(cfg.count):
        pair = make_pair(cfg, i)
        t = pair.truth
        assert t["leak"] == 0 and t["leak_position_m"] is None and t["delay_s"] is None
        found.setdefault(t["interference"], pair)
    assert set(found) == {"beyond A", "beyond B"}
    for side, sign in (("beyond A", -1), ("beyond B", 1)):
        t = found[side].truth
        expected = sign * t["distance_m"] / t["wave_speed_m_s"] * RATE
        assert t["interference_delay_s"] * RATE == pytest.approx(expected)
        assert abs(lag(found[side].a.astype(float), found[side].b.astype(float))
                   - round(expected)) <= 1


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_files_truth_and_layout(tmp_path: Path) -> None:
    cfg = PairSynthConfig(count=5, sample_rate=RATE, duration_s=1.0, seed=3)
    summary = synthesize_pairs(tmp_path / "out", cfg)
    out = tmp_path / "out"
    assert summary.pairs == 5 and summary.pairs_csv == out / "pairs.csv"
    assert summary.total_seconds == pytest.approx(10.0)
    with (out / "pairs.csv").open() as f:
        assert tuple(next(csv.reader(f))) == PAIRS_COLUMNS
    rows = read_csv(out / "pairs.csv")
    assert len(rows) == 5 and sum(r["leak"] == "1" for r in rows) == summary.leak_pairs
    assert sum(bool(r["interference"]) for r in rows) == summary.with_interference
    stamps = set()
    for i, row in enumerate(rows):
        a, b = sf.info(out / row["a"]), sf.info(out / row["b"])
        assert (a.samplerate, a.frames, a.subtype) == (b.samplerate, b.frames, b.subtype) \
            == (RATE, RATE, "PCM_16")
        ma, mb = parse_name(row["a"]), parse_name(row["b"])
        assert ma.sensor_id == f"P{i + 1:04d}A" and mb.sensor_id == f"P{i + 1:04d}B"
        assert ma.timestamp == mb.timestamp and ma.recording_id != mb.recording_id
        stamps.add(ma.timestamp)
        if row["leak"] == "1":
            assert 0.05 <= float(row["leak_position_m"]) / float(row["distance_m"]) <= 0.95
        else:
            assert row["leak_position_m"] == ""
        assert row["interference"] in ("", "beyond A", "beyond B")
        truth = make_pair(cfg, i).truth
        assert float(row["distance_m"]) == truth["distance_m"]
        assert float(row["wave_speed_m_s"]) == truth["wave_speed_m_s"]
    assert len(stamps) == 5
    layout = read_csv(out / "sensors.csv")
    assert tuple(layout[0]) == SENSORS_COLUMNS and len(layout) == 5
    assert [r["sensor_a"] for r in layout] == [parse_name(r["a"]).sensor_id for r in rows]
    with pytest.raises(InputError, match="not empty"):
        synthesize_pairs(out, cfg)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    cfg = PairSynthConfig(count=2, sample_rate=RATE, duration_s=0.5, seed=7)
    dirs = [tmp_path / name for name in ("one", "two", "other")]
    synthesize_pairs(dirs[0], cfg)
    synthesize_pairs(dirs[1], cfg)
    synthesize_pairs(dirs[2], replace(cfg, seed=8))

    def contents(d: Path) -> dict[str, bytes]:
        return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
                if p.is_file()}
    assert contents(dirs[0]) == contents(dirs[1])
    wavs = [p.name for p in sorted((dirs[0] / "recordings").iterdir())]
    assert all((dirs[0] / "recordings" / w).read_bytes() != (dirs[2] / "recordings" / w)
               .read_bytes() for w in wavs)


def test_the_cli_writes_refuses_and_overwrites(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pairs"
    flags = ["--count", "3", "--duration", "1", "--sample-rate", str(RATE),
             "--materials", "steel,PVC", "--span", "50,120", "--snr", "0,6",
             "--no-leak-share", "0", "--interference-share", "1", "--interference-db=-6,-3",
             "--seed", "2", "-q"]
    assert main(["synth-pairs", str(out), *flags]) == 0
    said = capsys.readouterr().out
    assert "3 pairs" in said and "3 with a leak" in said and "3 with interference" in said
    assert str(out / "pairs.csv") in said
    rows = read_csv(out / "pairs.csv")
    assert {r["material"] for r in rows} <= {"steel", "pvc"}
    assert all(50 <= float(r["distance_m"]) <= 120 and r["interference"] for r in rows)
    assert len(list((out / "recordings").glob("*.wav"))) == 6

    assert main(["synth-pairs", str(out), *flags]) == 1
    err = capsys.readouterr().err
    assert "not empty" in err and len(err.strip().splitlines()) == 1
    assert main(["synth-pairs", str(out), *flags, "--count", "2", "--overwrite"]) == 0
    assert len(list((out / "recordings").glob("*.wav"))) == 4
    assert len(read_csv(out / "pairs.csv")) == 2


def test_a_bad_config_says_what_is_wrong(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad"
    assert main(["synth-pairs", str(out), "--span", "10,5"]) == 1
    assert "span_m must be 0 < low <= high" in capsys.readouterr().err
    assert main(["synth-pairs", str(out), "--materials", "steel,wood"]) == 1
    assert "unknown pipe material 'wood'" in capsys.readouterr().err
    assert main(["synth-pairs", str(out), "--seed", "-1"]) == 1
    assert "seed must be in [0, 4294967295]" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["synth-pairs", str(out), "--span", "10"])
    assert "two numbers" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        make_pair(PairSynthConfig(materials=("wood",)), 0)
