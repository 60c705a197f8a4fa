"""The correlator end to end (leakhunter.locate.run, pair_audio, plot and ``leakhunter
locate``): one pair, many pairs, a layout, calibration, and bad input, one line each."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from leakhunter.cli import main
from leakhunter.config import LocateConfig, PairSynthConfig
from leakhunter.locate import run
from leakhunter.locate.pair_audio import read_pair
from leakhunter.locate.pairing import PairJob, read_pairs
from leakhunter.locate.run import (
    LOCATION_COLUMNS,
    calibrate_speed,
    locate_jobs,
    locate_pair,
    write_locations,
)
from leakhunter.locate.synth_pairs import synthesize_pairs
from leakhunter.locate.wave_speed import WaveSpeed, for_material
from leakhunter.runtime import devices

from ..helpers.cuda import FakeCuda
from ..helpers.png import assert_png

RATE = 4096
CPU = torch.device("cpu")
CFG = LocateConfig(workers=1)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four leak pairs on steel and PVC, 6 s at 4,096 Hz, and their truth."""
    out = tmp_path_factory.mktemp("pairs")
    synthesize_pairs(out, PairSynthConfig(
        count=4, sample_rate=RATE, duration_s=6.0, materials=("steel", "pvc"),
        span_m=(60.0, 150.0), snr_db=(0.0, 6.0), no_leak_share=0.0, interference_share=0.0))
    return out


def truth(folder: Path) -> list[dict[str, str]]:
    with (folder / "pairs.csv").open() as fh:
        return list(csv.DictReader(fh))


def given(row: dict[str, str]) -> WaveSpeed:
    c = float(row["wave_speed_m_s"])
    return WaveSpeed(c, c, c, "given")


def test_one_pair_is_placed_where_the_truth_says(pairs: Path) -> None:
    for row in truth(pairs):
        d, x = float(row["distance_m"]), float(row["leak_position_m"])
        r = locate_pair(pairs / row["a"], pairs / row["b"], d, given(row), CFG, CPU)
        assert r.location.status == "located" and abs(r.location.position_m - x) < 0.02 * d
        assert r.rate == RATE and r.seconds == pytest.approx(6.0) and r.notes == ()


def test_the_speed_is_calibrated_from_a_source_at_a_known_position(pairs: Path) -> None:
    row = truth(pairs)[0]
    d, x, c = (float(row[k]) for k in ("distance_m", "leak_position_m", "wave_speed_m_s"))
    cal = calibrate_speed(pairs / row["a"], pairs / row["b"], d, x, CFG, CPU,
                          WaveSpeed(300.0, 250.0, 1500.0, "any pipe"))
    assert cal.speed_m_s == pytest.approx(c, rel=0.02) and cal.low_m_s < c < cal.high_m_s
    assert cal.result.location.delay_s is not None


def test_a_hydrant_near_a_sensor_is_calibrated_on_its_own_peak(tmp_path: Path) -> None:
    """A hydrant 4.9 m from A on a 100 m span, and a weaker source between the sensors.
    Without a material the speeds allowed reach 1,500 m/s, at which the hydrant's peak
    looks like A's end: locating takes the weaker peak between the sensors (as it
    should), but the calibration must take the hydrant's own."""
    rng = np.random.default_rng(0)
    n, lag, lag2, k = 8 * RATE, 284, 40, 1000  # samples: B hears the hydrant 284 later
    hydrant, other = rng.standard_normal(n + 2 * k), 0.3 * rng.standard_normal(n + 2 * k)
    a = hydrant[k:k + n] + other[k:k + n] + 0.5 * rng.standard_normal(n)
    b = hydrant[k - lag:k - lag + n] + other[k + lag2:k + lag2 + n] + 0.5 * rng.standard_normal(n)
    for name, wave in (("a.wav", a), ("b.wav", b)):
        sf.write(tmp_path / name, (wave / 8).astype(np.float32), RATE, subtype="PCM_16")
    d, c = 100.0, 1300.0
    x = (d - c * lag / RATE) / 2
    anywhere = WaveSpeed(300.0, 250.0, 1500.0, "any pipe")
    located = locate_pair(tmp_path / "a.wav", tmp_path / "b.wav", d, anywhere, CFG, CPU)
    assert located.location.delay_s * RATE == pytest.approx(lag2, abs=0.5)
    assert "louder correlated sound comes from A's end" in located.location.reason
    cal = calibrate_speed(tmp_path / "a.wav", tmp_path / "b.wav", d, x, CFG, CPU, anywhere)
    assert cal.speed_m_s == pytest.approx(c, rel=0.005)
    assert cal.result.location.delay_s * RATE == pytest.approx(-lag, abs=0.5)


def test_the_calibration_command_prints_and_writes_the_speed_it_found(
        pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = truth(pairs)[0]
    d, x, c = (float(row[k]) for k in ("distance_m", "leak_position_m", "wave_speed_m_s"))
    ab = [str(pairs / row["a"]), str(pairs / row["b"])]
    out = tmp_path / "cal.json"
    assert main(["locate", *ab, "--distance", str(d), "--calibrate-at", str(x), "--out",
                 str(out), "--workers", "1"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("delay ") and "(peak quality" in said[0]
    assert said[1].startswith(f"wave speed {json.loads(out.read_text())['wave_speed_m_s']:.0f}")
    written = json.loads(out.read_text())
    assert written["wave_speed_m_s"] == pytest.approx(c, rel=0.02)
    low, high = written["wave_speed_range_m_s"]
    assert low < written["wave_speed_m_s"] < high and written["source_m"] == x
    assert "status" not in written  # located or outside would judge the guess, not the speed
    # a speed outside what the material allows is said; a plot is refused, not skipped
    wrong = for_material("steel" if row["material"] == "pvc" else "pvc")
    assert not wrong.low <= c <= wrong.high
    assert main(["locate", *ab, "--distance", str(d), "--calibrate-at", str(x),
                 "--material", wrong.source.split(",")[0], "--workers", "1"]) == 0
    assert f"lies outside {wrong.low:.0f} to {wrong.high:.0f} m/s" in capsys.readouterr().out
    assert main(["locate", *ab, "--distance", str(d), "--calibrate-at", str(x), "--plot",
                 str(tmp_path / "p.png")]) == 1
    assert "--calibrate-at prints a wave speed" in capsys.readouterr().err


def test_stereo_other_rate_and_other_length_are_brought_together_and_said(
        pairs: Path, tmp_path: Path) -> None:
    row = truth(pairs)[1]
    a, rate = sf.read(pairs / row["a"], dtype="float32")
    b, _ = sf.read(pairs / row["b"], dtype="float32")
    sf.write(tmp_path / "a.wav", np.stack([a, a], axis=1), rate)  # stereo
    import soxr

    sf.write(tmp_path / "b.wav", soxr.resample(b, rate, 3000)[: 3000 * 5], 3000)  # 5 s
    audio = read_pair(tmp_path / "a.wav", tmp_path / "b.wav")
    assert audio.rate == RATE and audio.a.shape == audio.b.shape
    assert audio.notes == ("A has 2 channels: mixed to mono",
                           "B resampled from 3000 Hz to 4096 Hz",
                           "A is 1.00 s longer: the overlap, the first 5.00 s of both, is used")
    d, x = float(row["distance_m"]), float(row["leak_position_m"])
    r = locate_pair(tmp_path / "a.wav", tmp_path / "b.wav", d, given(row), CFG, CPU)
    assert r.location.status == "located" and abs(r.location.position_m - x) < 0.02 * d
    shifted = read_pair(tmp_path / "a.wav", tmp_path / "b.wav", offset_s=0.5)
    assert "B starts 0.5 s later (timestamps): A's first 0.5 s dropped" in shifted.notes


def test_many_pairs_keep_their_order_and_bad_ones_become_rows(pairs: Path,
                                                             tmp_path: Path) -> None:
    jobs = read_pairs(pairs / "pairs.csv")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    broken = PairJob(row=5, a=tmp_path / "broken.wav", b=jobs[0].b, distance_m=50.0,
                     speed=jobs[0].speed, a_label="broken.wav", b_label="b.wav")
    bad = PairJob(row=6, a=None, b=None, distance_m=None, speed=None,
                  problem="distance must be positive, not -3 m", a_label="x", b_label="y")
    rows = locate_jobs([jobs[0], broken, bad, *jobs[1:]], LocateConfig(workers=2), CPU)
    assert [r["status"] for r in rows] == ["located", "bad input", "bad input"] + \
        ["located"] * (len(jobs) - 1)
    assert "broken.wav" in rows[1]["reason"] and "unreadable" in rows[1]["reason"]
    assert rows[2]["reason"] == "distance must be positive, not -3 m"
    out = write_locations(rows, tmp_path / "locations.csv")
    with out.open() as fh:
        back = list(csv.DictReader(fh))
    assert tuple(back[0]) == LOCATION_COLUMNS and len(back) == len(rows)
    for row, t in zip([back[0], *back[3:]], truth(pairs)):
        d = float(t["distance_m"])
        assert abs(float(row["position_m"]) - float(t["leak_position_m"])) < 0.02 * d


def test_the_command_for_one_pair_prints_writes_and_draws(
        pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = truth(pairs)[2]
    out, plot = tmp_path / "pair.json", tmp_path / "pair.png"
    assert main(["locate", str(pairs / row["a"]), str(pairs / row["b"]), "--distance",
                 row["distance_m"], "--material", row["material"], "--out", str(out),
                 "--plot", str(plot), "--workers", "1"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("status      located") and "m from A (interval" in said
    assert "m/s (range " in said  # a material's speeds span a range; a given speed has none
    result = json.loads(out.read_text())
    x, d = float(row["leak_position_m"]), float(row["distance_m"])
    assert result["low_m"] <= x <= result["high_m"] and abs(result["position_m"] - x) < 0.02 * d
    assert "Korteweg" in result["wave_speed_source"] and result["status"] == "located"
    assert_png(plot)
    assert main(["locate", str(pairs / row["a"]), str(pairs / row["b"]), "--distance",
                 row["distance_m"], "--wave-speed", "1000", "--workers", "1"]) == 0
    assert "wave speed  1000 m/s: given\n" in capsys.readouterr().out


def test_the_command_for_many_pairs_and_for_a_layout(
        pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "locations.csv"
    assert main(["locate", "--pairs", str(pairs / "pairs.csv"), "--out", str(out),
                 "--plots", str(tmp_path / "plots"), "--workers", "1"]) == 0
    assert "located 4 pairs (4 located)" in capsys.readouterr().out
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert all((tmp_path / r["plot"]).is_file() for r in rows)
    # the layout pairs the same recordings by sensor and timestamp; a B recording an hour
    # late pairs with nothing and says why
    night = tmp_path / "night"
    shutil.copytree(pairs / "recordings", night)
    late = sorted(night.glob("P0001B~*"))[0]
    late.rename(night / late.name.replace("T010000", "T020000"))
    assert main(["locate", "--layout", str(pairs / "sensors.csv"), "--recordings",
                 str(night), "--out", str(out), "--workers", "1"]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["bad input"] + ["located"] * 3
    assert "more than --max-offset 1 s" in rows[0]["reason"]


@pytest.mark.parametrize("args, message", [
    (["--distance", "0", "--wave-speed", "1200"], "distance between the sensors must be "
                                                  "positive, not 0 m"),
    (["--distance", "100", "--material", "bamboo"], "unknown pipe material 'bamboo'"),
    (["--distance", "100"], "give a wave speed or a pipe material"),
    (["--wave-speed", "1200"], "one pair needs both recordings and --distance M"),
    (["--distance", "nan", "--wave-speed", "1200"], "must be a number of metres, not nan"),
    (["--distance", "100", "--material", "pe", "--diameter", "130800"],
     "a bore of 130800 mm is larger than any water main"),
    (["--distance", "100", "--wave-speed", "1200", "--window", "inf"],
     "window_s must be a positive number of seconds"),
    (["--distance", "100", "--wave-speed", "1200", "--plot", "pair.xyz"],
     "pair.xyz: a plot is written as png, svg, pdf, jpg, not .xyz"),
    (["--distance", "100", "--wave-speed", "1200", "--out", "{a}"],
     "would replace the input A"),
    (["--distance", "100", "--wave-speed", "1200", "--out", "x.png", "--plot", "x.png"],
     "--plot x.png is the same file as --out x.png"),
])
def test_bad_input_is_one_line(pairs: Path, args: list[str], message: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    row = truth(pairs)[0]
    a = pairs / row["a"]
    before = a.read_bytes()
    args = [arg.replace("{a}", str(a)) for arg in args]
    assert main(["locate", str(a), str(pairs / row["b"]), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert a.read_bytes() == before


def test_recordings_with_nothing_to_correlate_are_refused_with_the_reason(
        pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = truth(pairs)[0]
    a = pairs / row["a"]
    wave, rate = sf.read(a, dtype="float32")
    broken = wave.copy()
    broken[100] = np.nan
    sf.write(tmp_path / "nan.wav", broken, rate, subtype="FLOAT")
    sf.write(tmp_path / "zeros.wav", np.zeros_like(wave), rate)
    sf.write(tmp_path / "cancel.wav", np.stack([wave, -wave], axis=1), rate, subtype="FLOAT")
    shutil.copy(a, tmp_path / "copy.wav")
    why = {"nan.wav": "nan.wav: contains NaN or infinite samples",
           "zeros.wav": "zeros.wav: silence (RMS 0.0e+00)",
           "cancel.wav": "cancel.wav: silence once its 2 channels are mixed to mono",
           "copy.wav": "copy.wav hold the same samples: one recording given as both"}
    for name, message in why.items():
        assert main(["locate", str(a), str(tmp_path / name), "--distance", row["distance_m"],
                     "--wave-speed", row["wave_speed_m_s"]]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    # in a pairs CSV each is a row of bad input with that reason; the good pair is located
    lines = [f"{a},{pairs / row['b']},{row['distance_m']},{row['wave_speed_m_s']}"]
    lines += [f"{a},{name},{row['distance_m']},{row['wave_speed_m_s']}" for name in why]
    (tmp_path / "pairs.csv").write_text("a,b,distance_m,wave_speed_m_s\n" + "\n".join(lines))
    out = tmp_path / "locations.csv"
    assert main(["locate", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(out),
                 "--workers", "1"]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["located"] + ["bad input"] * len(why)
    assert all(message in r["reason"] for r, message in zip(rows[1:], why.values()))
    assert "located 5 pairs (1 located, 4 bad input)" in capsys.readouterr().out
    # --strict: the same CSV, and an exit code a script can act on
    assert main(["locate", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(out),
                 "--workers", "1", "--strict"]) == 1
    with out.open() as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == [r["status"] for r in rows]


def test_many_pairs_refuse_what_belongs_to_one_pair_or_would_lose_data(
        pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = str(pairs / "pairs.csv")
    before = (pairs / "pairs.csv").read_bytes()
    for args, message in (
            (["--pairs", listed, "--out", listed], f"--out {listed} would replace the input"),
            (["--pairs", listed, "--out", "x.csv", "--distance", "50", "--material", "pe"],
             "--distance, --material: for one pair only"),
            (["--layout", str(pairs / "sensors.csv"), "--recordings", str(pairs),
              "--sensors", " , ", "--out", "x.csv"], "--sensors names the sensors of "
                                                    "--layout rows to keep: give at least one"),
            (["--pairs", listed, "--sensors", "P0001A", "--out", "x.csv"],
             "--sensors is for --layout")):
        assert main(["locate", *args]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert (pairs / "pairs.csv").read_bytes() == before


def test_an_interrupted_run_leaves_neither_locations_nor_plots(
        pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Plots are drawn into a hidden folder and moved in at the end: Ctrl-C part-way
    (here after the first pair's plot) removes them with the CSV."""
    real = run.locate_jobs

    def interrupted(jobs, cfg, device, plots=None, detector=None):
        real(jobs[:1], cfg, device, plots, detector)
        assert plots is not None and len(list(plots.glob("pair*.png"))) == 1
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "locate_jobs", interrupted)
    out, plots = tmp_path / "locations.csv", tmp_path / "plots"
    assert main(["locate", "--pairs", str(pairs / "pairs.csv"), "--out", str(out),
                 "--plots", str(plots), "--workers", "1"]) == 130
    assert "interrupted; partial output removed" in capsys.readouterr().err
    assert not out.exists() and list(plots.iterdir()) == []


def test_the_ways_in_are_exclusive(pairs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["locate", "--pairs", str(pairs / "pairs.csv")]) == 1
    assert "give --out FILE.csv" in capsys.readouterr().err
    assert main(["locate"]) == 1
    assert "give one pair" in capsys.readouterr().err


def test_the_cuda_path_reads_in_workers_and_correlates_here(
        pairs: Path, fake_cuda: FakeCuda, monkeypatch: pytest.MonkeyPatch) -> None:
    """With CUDA (simulated: the pairs stay on the CPU where they would move to the GPU),
    the workers only read and this process correlates all pairs in one batch."""
    batches: list[int] = []
    real = run.locate_batch

    def counted(a: torch.Tensor, *args, **kwargs):
        batches.append(a.shape[0])
        return real(a, *args, **kwargs)

    monkeypatch.setattr(run, "to_device", lambda t, device: t)
    monkeypatch.setattr(run, "locate_batch", counted)
    device = devices.resolve("cuda", "locate").device
    assert device == torch.device("cuda", 0)
    jobs = read_pairs(pairs / "pairs.csv")
    rows = run.locate_jobs(jobs, LocateConfig(workers=2), device)
    assert [r["status"] for r in rows] == ["located"] * len(jobs)
    windows = {run.window_samples(j.distance_m, j.speed.low, RATE, 6 * RATE, CFG) for j in jobs}
    assert sum(batches) == len(jobs) and len(batches) == len(windows) < len(jobs)
    # longer recordings, or a smaller budget: fewer pairs per GPU batch, none left out
    batches.clear()
    monkeypatch.setattr(run, "GPU_BATCH_SAMPLES", 6 * RATE)
    rows = run.locate_jobs(jobs, LocateConfig(workers=2), device)
    assert [r["status"] for r in rows] == ["located"] * len(jobs)
    assert batches == [1] * len(jobs)


# --- on a real GPU --------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_pairs_are_placed_as_on_the_cpu(pairs: Path) -> None:
    """The CUDA path (workers read, the GPU correlates whole batches, lines removed and
    averages reduced there) gives the CPU's statuses and, to float32 rounding, positions."""
    jobs = read_pairs(pairs / "pairs.csv")
    cpu = locate_jobs(jobs, LocateConfig(workers=2), CPU)
    gpu = locate_jobs(jobs, LocateConfig(workers=2), torch.device("cuda"))
    assert [g["status"] for g in gpu] == [c["status"] for c in cpu] == ["located"] * len(jobs)
    for g, c in zip(gpu, cpu):
        assert float(g["position_m"]) == pytest.approx(float(c["position_m"]), abs=0.05)
        assert float(g["peak"]) == pytest.approx(float(c["peak"]), rel=0.02)
