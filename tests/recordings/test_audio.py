"""Reading recordings: formats, mono mixing, resampling, cleaning, names, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.config import AudioConfig, FeatureConfig
from leakhunter.errors import AUDIO_ERROR_KINDS, AudioError
from leakhunter.recordings.audio import (
    gain_too_low,
    load_recording,
    parse_name,
    remove_trend,
    resample,
)

from ..helpers.samples import EXPECTED_KIND, EXPECTED_REASON, bad_files, tone

FEATURE = FeatureConfig()
AUDIO = AudioConfig()


def test_parse_name_follows_convention() -> None:
    meta = parse_name("/x/LEAK/S0107~R004213~20240314T021500~18.wav")
    assert (meta.sensor_id, meta.recording_id, meta.timestamp, meta.gain_db) == (
        "S0107", "R004213", "20240314T021500", 18.0)
    assert parse_name("a~b~c~-3.5.flac").gain_db == -3.5


@pytest.mark.parametrize("name", ["recording.wav", "a~b~c.wav", "a~b~c~d~e.wav", "~b~c~1.wav"])
def test_parse_name_leaves_nonconforming_names_empty(name: str) -> None:
    meta = parse_name(name)
    assert meta.sensor_id == "" and meta.gain_db is None


def test_unparseable_gain_keeps_other_fields() -> None:
    meta = parse_name("S1~R1~T~loud.wav")
    assert meta.sensor_id == "S1" and meta.gain_db is None
    assert not gain_too_low(meta, AUDIO)


def test_gain_threshold_is_inclusive() -> None:
    assert gain_too_low(parse_name("S~R~T~1.wav"), AUDIO)
    assert gain_too_low(parse_name("S~R~T~0.5.wav"), AUDIO)
    assert not gain_too_low(parse_name("S~R~T~1.5.wav"), AUDIO)


@pytest.mark.parametrize("fmt,subtype,ext", [
    ("WAV", "PCM_16", "wav"), ("WAV", "PCM_24", "wav"), ("WAV", "PCM_32", "wav"),
    ("WAV", "FLOAT", "wav"), ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"),
])
def test_formats_decode_to_the_same_waveform(tmp_path: Path, fmt: str, subtype: str,
                                             ext: str) -> None:
    x = tone()
    path = tmp_path / f"s~r~t~10.{ext}"
    sf.write(path, x, 4096, format=fmt, subtype=subtype)
    rec = load_recording(path, FEATURE, AUDIO)
    assert rec.original_sample_rate == 4096 and rec.duration_s == pytest.approx(1.0)
    assert rec.waveform.dtype == np.float32 and rec.waveform.shape == (8192,)
    reference = remove_trend(resample(x, 4096, 8192))
    tol = 0.05 if fmt == "OGG" else 1e-3  # Vorbis is lossy
    assert np.abs(rec.waveform - reference).max() < tol


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    x = tone()
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1), 4096, subtype="FLOAT")
    rec = load_recording(path, FeatureConfig(sample_rate=4096), AUDIO)
    np.testing.assert_allclose(rec.waveform, remove_trend(0.75 * x), atol=1e-6)


def test_same_audio_in_other_container_has_same_hash(tmp_path: Path) -> None:
    x = (tone() * 32767).astype(np.int16)  # integers: both writers store them exactly
    sf.write(tmp_path / "a.wav", x, 4096, subtype="PCM_16")
    sf.write(tmp_path / "b.flac", x, 4096, subtype="PCM_16")
    sf.write(tmp_path / "c.wav", x // 2, 4096, subtype="PCM_16")
    h = [load_recording(tmp_path / n, FEATURE, AUDIO).content_hash
         for n in ("a.wav", "b.flac", "c.wav")]
    assert h[0] == h[1] != h[2]


def test_remove_trend_removes_offset_and_drift() -> None:
    n = 10_000
    x = (np.sin(np.arange(n) * 0.3) + 2.0 + 1e-4 * np.arange(n)).astype(np.float32)
    y = remove_trend(x)
    slope, offset = np.polyfit(np.arange(n), y.astype(np.float64), 1)
    assert abs(slope) < 1e-8 and abs(offset) < 1e-4
    assert y.dtype == np.float32


def test_detrend_can_be_turned_off(tmp_path: Path) -> None:
    path = tmp_path / "dc.wav"
    sf.write(path, tone() + 0.2, 4096, subtype="FLOAT")
    cfg = FeatureConfig(sample_rate=4096)
    assert abs(load_recording(path, cfg, AUDIO).waveform.mean()) < 1e-3
    assert load_recording(path, cfg, AudioConfig(detrend=False)).waveform.mean() == \
        pytest.approx(0.2, abs=1e-3)


def test_bad_files_raise_audio_error_with_kind_and_reason(tmp_path: Path) -> None:
    for kind, path in bad_files(tmp_path).items():
        with pytest.raises(AudioError) as info:
            load_recording(path, FEATURE, AUDIO)
        assert info.value.kind == EXPECTED_KIND[kind], (kind, info.value.kind)
        assert info.value.kind in AUDIO_ERROR_KINDS
        assert EXPECTED_REASON[kind] in info.value.reason, (kind, info.value.reason)
        assert info.value.path == str(path)


def test_an_audio_error_needs_a_known_kind() -> None:
    with pytest.raises(ValueError, match="unknown AudioError kind"):
        AudioError("x.wav", "too quiet", "a kind nobody reads")
