"""Tests of the synthetic data generator, leakhunter.recordings.synth (tiny configs: each test
takes well under a second): layout, names, levels, labels, and its sites (`synth --site`:
site A is the world as before; site B is shifted where it should be); a full disk is one
line."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.cli import main
from leakhunter.config import MULTICLASS_LABELS, SynthConfig
from leakhunter.errors import ConfigError, InputError
from leakhunter.recordings.synth import sounds, synth
from leakhunter.recordings.synth.synth import SynthSummary, recipe_for, synthesize

from ..helpers.faults import REASON, one_line, temps

NAME = re.compile(r"^(S\d{4,})~(R\d{6,})~(\d{8}T\d{6})~(\d+)\.wav$")
TINY = SynthConfig(count=6, duration_s=2.0, sensors_per_label=2, out_of_water=1)


def parse(path: Path) -> tuple[str, str, datetime, int]:
    match = NAME.match(path.name)
    assert match, f"bad file name {path.name}"
    sensor, recording, stamp, gain = match.groups()
    return sensor, recording, datetime.strptime(stamp, "%Y%m%dT%H%M%S"), int(gain)


def wavs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


def band_fraction(x: np.ndarray, sr: int, lo: float = 200, hi: float = 1500) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / sr)
    return float(power[(f >= lo) & (f <= hi)].sum() / power.sum())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("synth") / "data"
    return out, synthesize(out, TINY)


def test_layout_and_names(tiny):
    out, summary = tiny
    assert sorted(p.name for p in out.iterdir()) == ["LEAK", "NOLEAK", synth.LABELS_FILE]
    assert not list(out.rglob(".*")), "temporary files left behind"
    recordings, stamps = [], []
    for label in TINY.labels:
        files = sorted((out / label).iterdir())
        assert len(files) == TINY.count
        gains = []
        for path in files:
            _, recording, stamp, gain = parse(path)
            recordings.append(recording)
            stamps.append(stamp)
            gains.append(gain)
        assert sum(g == 1 for g in gains) == TINY.out_of_water
        assert all(g > 1 for g in gains if g != 1)
        assert all(2 <= g <= 40 for g in gains if g != 1)
    assert len(set(recordings)) == len(recordings), "recording ids must be unique"
    assert len(set(stamps)) == len(stamps), "timestamps must differ per file"
    assert all(datetime(2023, 1, 1) < s < datetime(2026, 1, 1) for s in stamps)
    assert summary.out_dir == out
    assert summary.files == 2 * TINY.count
    assert summary.per_label == {"LEAK": TINY.count, "NOLEAK": TINY.count}
    assert summary.out_of_water == 2 * TINY.out_of_water
    assert summary.total_seconds == pytest.approx(2 * TINY.count * TINY.duration_s)
    assert 0 <= summary.with_interference <= summary.files - summary.out_of_water


def test_audio_format_and_levels(tiny):
    out, _ = tiny
    for path in out.rglob("*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (4096, 1, "PCM_16")
        assert info.frames == int(TINY.duration_s * TINY.sample_rate)
        x, _ = sf.read(path, dtype="int16")
        peak = np.abs(x.astype(np.int32)).max() / 32767
        if parse(path)[3] == 1:  # out of water: faint hiss only
            assert 0.005 < peak < 0.1
        else:  # no clipping, yet well inside the 16-bit range
            assert 0.28 < peak < 0.82
        assert x.std() > 0


def test_gain_sets_level(tmp_path):
    summary = synthesize(tmp_path / "d", SynthConfig(count=24, duration_s=0.5,
                                                     sensors_per_label=8, out_of_water=0))
    pairs = []
    for path in summary.out_dir.rglob("*.wav"):
        x, _ = sf.read(path)
        pairs.append((parse(path)[3], np.abs(x).max()))
    gains, peaks = np.array(pairs).T
    assert np.corrcoef(gains, peaks)[0, 1] > 0.9


def test_sensors_belong_to_one_label(tiny):
    out, summary = tiny
    owners = defaultdict(set)
    for label in TINY.labels:
        for path in (out / label).iterdir():
            owners[parse(path)[0]].add(label)
    assert all(len(labels) == 1 for labels in owners.values())
    per_label = Counter(next(iter(labels)) for labels in owners.values())
    assert per_label == {label: TINY.sensors_per_label for label in TINY.labels}
    assert {label: sorted(ids) for label, ids in summary.sensors.items()} == {
        label: sorted(s for s, labels in owners.items() if label in labels)
        for label in TINY.labels}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny):
    out, _ = tiny
    again = tmp_path / "again"
    synthesize(again, TINY)
    assert wavs(again) == wavs(out)
    other = tmp_path / "other"
    synthesize(other, dataclasses.replace(TINY, seed=1))
    a, b = wavs(out), wavs(other)
    assert a.keys() != b.keys()
    assert sorted(a.values()) != sorted(b.values())


def test_recording_independent_of_order():
    plans = synth.plan_files(TINY)
    forward = [synth.render(p, TINY) for p in plans]
    backward = [synth.render(p, TINY) for p in reversed(plans)][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward))
    assert not np.array_equal(forward[0], forward[1])


def test_multiclass_layout(tmp_path):
    config = SynthConfig(count=3, duration_s=1.0, labels=MULTICLASS_LABELS,
                         sensors_per_label=2, out_of_water=0)
    summary = synthesize(tmp_path / "multi", config)
    folders = sorted(p.name for p in (tmp_path / "multi").iterdir() if p.is_dir())
    assert folders == sorted(MULTICLASS_LABELS)
    assert summary.per_label == dict.fromkeys(MULTICLASS_LABELS, 3)
    assert all(len(list((tmp_path / "multi" / f).glob("*.wav"))) == 3 for f in folders)
    assert len({s for ids in summary.sensors.values() for s in ids}) == 10


def test_recipes_by_label_name():
    assert [recipe_for(x) for x in MULTICLASS_LABELS] == [
        "background", "crack", "leak", "normal", "mixed"]
    assert recipe_for("NOLEAK") == "noleak"
    assert recipe_for("small_leak") == "leak"
    assert recipe_for("HAIRLINE-CRACK") == "crack"
    assert recipe_for("NO_LEAK") in ("noleak", "normal", "background")
    assert recipe_for("QUIET") == recipe_for("QUIET") in ("noleak", "normal", "background")


def test_interference_fraction_honoured():
    def fraction(p: float) -> float:
        plans = synth.plan_files(SynthConfig(count=500, interference=p, out_of_water=0))
        return sum(x.interference for x in plans) / len(plans)
    assert fraction(0.0) == 0.0
    assert fraction(1.0) == 1.0
    assert abs(fraction(0.35) - 0.35) < 0.04


def test_interference_adds_bursts():
    # 10 s: even four 1.5 s bursts leave most 0.25 s blocks untouched
    config = SynthConfig(count=4, duration_s=10.0, out_of_water=0, interference=1.0)
    ratios = []
    for plan in synth.plan_files(config):
        clean = synth.render(plan, config)
        noisy = clean.copy()
        sounds.add_interference(np.random.default_rng(plan.index), noisy, 4096.0)
        seg = (noisy - clean).reshape(40, 1024)
        rms = np.sqrt((seg ** 2).mean(axis=1))
        ratios.append(rms.max() / np.sqrt((clean ** 2).mean()))
        assert (rms == 0).any(), "bursts must be local, not everywhere"
    assert min(ratios) > 0.5


def test_refuses_non_empty_folder_unless_overwrite(tmp_path):
    out = tmp_path / "data"
    (out / "LEAK").mkdir(parents=True)
    (out / "LEAK" / "stale.wav").write_bytes(b"old")
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        synthesize(out, TINY)
    assert not (out / "NOLEAK").exists()
    summary = synthesize(out, TINY, overwrite=True)
    assert not (out / "LEAK" / "stale.wav").exists()
    assert (out / "notes.txt").read_text() == "keep me"
    assert len(list(out.rglob("*.wav"))) == summary.files == 2 * TINY.count


def test_overwrite_with_other_labels_clears_the_earlier_ones(tmp_path):
    """Multi-class data overwritten by binary data: the earlier label folders go too, or
    build would read them as classes; a folder synth did not write stays."""
    out = tmp_path / "data"
    synthesize(out, dataclasses.replace(TINY, labels=("CRACK", "LEAK", "NOLEAK")))
    (out / "mine").mkdir()
    synthesize(out, TINY, overwrite=True)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["LEAK", "NOLEAK", "mine"]


def test_empty_folder_accepted_and_file_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert synthesize(tmp_path / "empty", TINY).files == 12
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError):
        synthesize(tmp_path / "file", TINY, overwrite=True)


def test_label_must_be_a_folder_name(tmp_path):
    with pytest.raises(ConfigError):
        synthesize(tmp_path / "d", SynthConfig(count=1, out_of_water=0, labels=("A/B", "C")))


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def broken(path, *args, **kwargs):
        Path(path).write_bytes(b"RIFF half")
        raise OSError("disk full")
    monkeypatch.setattr(synth.sf, "write", broken)
    with pytest.raises(OSError):
        synthesize(tmp_path / "d", TINY)
    # no recording, whole or part (synth.json, written first, is whole)
    assert [p for p in (tmp_path / "d").rglob("*")
            if p.is_file() and p.name != synth.LABELS_FILE] == []


def _band_gap(tmp_path: Path, difficulty: float) -> float:
    config = SynthConfig(count=16, duration_s=2.0, sensors_per_label=4, out_of_water=0,
                         interference=0.0, difficulty=difficulty)
    out = tmp_path / f"d{difficulty}"
    synthesize(out, config)
    mean = {label: np.mean([band_fraction(sf.read(p)[0], 4096)
                            for p in (out / label).glob("*.wav")]) for label in config.labels}
    return mean["LEAK"] - mean["NOLEAK"]


def test_leak_energy_sits_in_the_leak_band(tmp_path):
    easy = _band_gap(tmp_path, 0.0)
    assert easy > 0.4  # LEAK files: most energy in 200-1500 Hz; NOLEAK: mostly below
    assert _band_gap(tmp_path, 1.0) < easy / 2  # at full difficulty the gap closes


def test_no_clipping_even_with_loud_interference(tmp_path):
    config = SynthConfig(count=10, duration_s=1.0, interference=1.0, difficulty=0.0,
                         out_of_water=0)
    synthesize(tmp_path / "loud", config)
    for path in (tmp_path / "loud").rglob("*.wav"):
        x, _ = sf.read(path, dtype="int16")
        peak = np.abs(x.astype(np.int32)).max()
        assert 0.28 * 32767 < peak < 0.82 * 32767, path.name


# --- sites -------------------------------------------------------------------------------

SMALL = SynthConfig(count=4, duration_s=1.0, sensors_per_label=2, seed=3)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.wav")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_site_a_is_the_world_as_before(tmp_path: Path) -> None:
    synthesize(tmp_path / "a", SMALL)
    # the bytes synth wrote for this config before sites existed
    assert _digest(tmp_path / "a") == \
        "3a1c1af129752bb2b9b82283c49f8ada8ea65c198420ba6c6e9819039b728a5f"


def _centroid(files: list[Path]) -> float:
    out = []
    for f in files:
        x, sr = sf.read(f)
        spec = np.abs(np.fft.rfft(x)) ** 2
        freq = np.fft.rfftfreq(x.size, 1 / sr)
        out.append(float((spec * freq).sum() / spec.sum()))
    return float(np.median(out))


def test_site_b_is_shifted(tmp_path: Path) -> None:
    cfg = SynthConfig(count=12, duration_s=2.0, sensors_per_label=4, seed=3,
                      interference=0.0, out_of_water=0)
    synthesize(tmp_path / "a", cfg)
    synthesize(tmp_path / "b", SynthConfig(**{**cfg.__dict__, "site": "b"}))
    b_files = sorted((tmp_path / "b").rglob("*.wav"))
    assert all(f.name.startswith("S5") and "~R5" in f.name for f in b_files)
    a_names = {f.name.split("~")[0] for f in (tmp_path / "a").rglob("*.wav")}
    assert not a_names & {f.name.split("~")[0] for f in b_files}  # no shared sensor
    # leak noise in plastic pipes lives lower
    leak_a = _centroid(sorted((tmp_path / "a" / "LEAK").glob("*.wav")))
    leak_b = _centroid(sorted((tmp_path / "b" / "LEAK").glob("*.wav")))
    assert leak_b < 0.7 * leak_a


def test_site_c_is_a_third_world(tmp_path: Path) -> None:
    cfg = SynthConfig(count=12, duration_s=2.0, sensors_per_label=4, seed=3,
                      interference=0.0, out_of_water=0)
    for site in "ABC":
        synthesize(tmp_path / site, SynthConfig(**{**cfg.__dict__, "site": site}))
    c_files = sorted((tmp_path / "C").rglob("*.wav"))
    assert all(f.name.startswith("S7") and "~R7" in f.name for f in c_files)
    sensors = {s: {f.name.split("~")[0] for f in (tmp_path / s).rglob("*.wav")} for s in "ABC"}
    assert not sensors["C"] & (sensors["A"] | sensors["B"])
    # asbestos cement: leak noise between the metal (A) and plastic (B) bands
    leak = {s: _centroid(sorted((tmp_path / s / "LEAK").glob("*.wav"))) for s in "ABC"}
    assert leak["B"] < leak["C"] < leak["A"]


def test_unknown_site_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["synth", str(tmp_path / "x"), "--site", "Z", "--count", "3"]) == 1
    err = capsys.readouterr().err
    assert "unknown site 'Z'; known sites: A, B, C" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args,message", [
    (["--seed", "-1"], "seed must be in [0, 4294967295]"),
    (["--seed", "4294967296"], "seed must be in [0, 4294967295]"),
    (["--count", "1", "--out-of-water", "2"], "out_of_water must be in [0, count]"),
])
def test_bad_settings_are_one_line(tmp_path: Path, capsys, args: list[str],
                                   message: str) -> None:
    assert main(["synth", str(tmp_path / "x"), *args]) == 1
    one_line(capsys.readouterr().err, message)
    assert not (tmp_path / "x").exists()


def test_the_default_out_of_water_leaves_every_label_a_recording(tmp_path: Path,
                                                                  capsys) -> None:
    """--out-of-water not given: 2, at most count - 1 (build leaves such recordings out);
    a value given is kept, or refused when over count."""
    assert [SynthConfig(count=n).out_of_water for n in (1, 2, 3, 100)] == [0, 1, 2, 2]
    assert SynthConfig(count=2, out_of_water=2).out_of_water == 2
    assert main(["synth", str(tmp_path / "x"), "--count", "1", "--duration", "0.5"]) == 0
    assert "2 recordings" in capsys.readouterr().out


# --- a full disk ---------------------------------------------------------------------------

def test_synth_write_failure_is_one_line(tmp_path: Path, capsys,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(path, *args, **kwargs):  # libsndfile writes from C
        Path(path).write_bytes(b"RIFF half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(synth.sf, "write", full_disk)
    assert main(["synth", str(tmp_path / "rec"), "--count", "2", "--duration", "1"]) == 1
    one_line(capsys.readouterr().err, "writing a recording", REASON[errno.ENOSPC])
    assert temps(tmp_path / "rec") == []
