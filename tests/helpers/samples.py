"""Recordings for tests: the shared real hydrophone files, a tone, and a set of bad files
with the kind and reason each must raise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.config import SynthConfig

REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "real-hydrophone"

TINY = SynthConfig(count=12, duration_s=2.0, sensors_per_label=4, out_of_water=1, seed=7)
"""The shared ``recordings`` fixture's settings (tests/conftest.py)."""

SHORT_FILE = "S0901~R000001~20240101T000000~20.wav"
"""A 0.1 s recording in the ``presplit`` fixture's TESTING/LEAK (tests/conftest.py):
shorter than one segment, so padded."""
TINY_FILE = "S0902~R000002~20240101T000000~20.wav"
"""A 0.02 s recording beside :data:`SHORT_FILE`: under --min-duration (0.05 s)."""


def real_files() -> list[Path]:
    return sorted(REAL_DIR.glob("*.wav")) if REAL_DIR.is_dir() else []


needs_real = pytest.mark.skipif(not real_files(), reason="shared/real-hydrophone not present")


def tone(seconds: float = 1.0, sr: int = 4096) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def bad_files(tmp: Path) -> dict[str, Path]:
    """Unusable recordings in ``tmp``, by kind of fault (and a good ``good.wav`` beside
    them); "missing" names a file that is not there."""
    tmp.mkdir(parents=True, exist_ok=True)
    files = {}
    files["empty file"] = tmp / "empty.wav"
    files["empty file"].write_bytes(b"")
    files["text"] = tmp / "text.wav"
    files["text"].write_text("this is not audio\n" * 50)
    good = tmp / "good.wav"
    sf.write(good, tone(), 4096, subtype="PCM_16")
    files["truncated header"] = tmp / "truncated.wav"
    files["truncated header"].write_bytes(good.read_bytes()[:30])
    files["no samples"] = tmp / "nosamples.wav"
    sf.write(files["no samples"], np.zeros(0, np.float32), 4096)
    files["nan"] = tmp / "nan.wav"
    x = tone()
    x[100] = np.nan
    sf.write(files["nan"], x, 4096, subtype="FLOAT")
    files["inf"] = tmp / "inf.wav"
    x = tone()
    x[5] = np.inf
    sf.write(files["inf"], x, 4096, subtype="FLOAT")
    files["silence"] = tmp / "silence.wav"
    sf.write(files["silence"], np.zeros(8192, np.float32), 4096, subtype="PCM_16")
    files["short"] = tmp / "short.wav"
    sf.write(files["short"], tone(0.02), 4096, subtype="PCM_16")  # under --min-duration
    files["cut wav"] = tmp / "cut.wav"  # header: 1 s; file: 500 frames (0.12 s)
    files["cut wav"].write_bytes(good.read_bytes()[:44 + 1000])
    files["cut flac"] = tmp / "cut.flac"  # STREAMINFO: 4 s; decoding stops part-way
    sf.write(tmp / "whole.flac", tone(4.0) + 0.01 * np.random.default_rng(0).standard_normal(
        4 * 4096).astype(np.float32), 4096)
    files["cut flac"].write_bytes((tmp / "whole.flac").read_bytes()[:6000])
    (tmp / "whole.flac").unlink()
    files["missing"] = tmp / "missing.wav"
    return files


EXPECTED_REASON = {
    "empty file": "unreadable", "text": "unreadable", "truncated header": "unreadable",
    "no samples": "empty", "nan": "NaN", "inf": "NaN or infinite", "silence": "silence",
    "short": "too short", "missing": "cannot open",
    "cut wav": "truncated: header declares 1.00 s, file holds 0.12 s",
    "cut flac": "truncated: header declares 4.00 s, file holds",
}
EXPECTED_KIND = {
    "empty file": "unreadable", "text": "unreadable", "truncated header": "unreadable",
    "no samples": "empty", "nan": "invalid samples", "inf": "invalid samples",
    "silence": "silence", "short": "too short", "missing": "unreadable",
    "cut wav": "truncated", "cut flac": "truncated",
}
"""The kind each bad file raises: set where the error is raised, not read from its text."""
