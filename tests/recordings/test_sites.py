"""`synth --site`: site A is the world as before; site B is shifted where it should be."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from leakhunter.cli import main
from leakhunter.config import SynthConfig
from leakhunter.recordings.synth.synth import synthesize

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


def test_unknown_site_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["synth", str(tmp_path / "x"), "--site", "Z", "--count", "3"]) == 1
    err = capsys.readouterr().err
    assert "unknown site 'Z'; known sites: A, B" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
