"""What a recording's header promises against what the file holds
(leakhunter.recordings.container), and how reading follows it: truncated files named for
what they are, placeholder headers read whole."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.config import AudioConfig, FeatureConfig
from leakhunter.errors import AudioError
from leakhunter.recordings import audio as audio_module
from leakhunter.recordings.audio import read_audio
from leakhunter.recordings.container import inspect, open_sound
from leakhunter.recordings.stream import waveform_pieces

RATE = 4096


def _noise(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(int(seconds * 10))
    return (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def _cut(path: Path, keep: float) -> Path:
    """A copy of ``path`` holding the first ``keep`` share of its bytes."""
    data = path.read_bytes()
    out = path.with_name("cut-" + path.name)
    out.write_bytes(data[:int(len(data) * keep)])
    return out


@pytest.mark.parametrize("fmt, subtype, suffix", [
    ("WAV", "PCM_16", ".wav"), ("WAV", "FLOAT", ".wav"), ("RF64", "PCM_24", ".rf64"),
    ("AIFF", "PCM_16", ".aiff"), ("FLAC", "PCM_16", ".flac")])
def test_whole_and_cut_files_of_each_container(tmp_path: Path, fmt: str, subtype: str,
                                               suffix: str) -> None:
    whole = tmp_path / f"x{suffix}"
    sf.write(whole, np.stack([_noise(10), _noise(10)], 1), RATE, format=fmt, subtype=subtype)
    layout = inspect(whole)
    assert layout.declared == 10 * RATE and layout.short_by == 0 and not layout.placeholder
    assert read_audio(whole).truncated == ""
    cut = _cut(whole, 0.3)
    if fmt != "FLAC":  # the bytes say it; for FLAC only decoding does
        assert inspect(cut).declared == 10 * RATE and inspect(cut).short_by > 0
    with pytest.raises(AudioError) as info:
        read_audio(cut)
    assert info.value.kind == "truncated"
    assert info.value.reason.startswith("truncated: header declares 10.00 s, file holds ")
    assert 1.0 < float(info.value.reason.split("holds ")[1].split(" s")[0]) < 3.5
    kept = read_audio(cut, allow_truncated=True)
    assert kept.truncated == info.value.reason
    assert 1.0 * RATE < kept.data.shape[0] < 3.5 * RATE and kept.data.shape[1] == 2


def test_a_cut_wav_is_read_as_libsndfile_reads_it(tmp_path: Path) -> None:
    """The part kept is exactly what is there: the same samples as the whole file's."""
    whole = tmp_path / "x.wav"
    sf.write(whole, _noise(10), RATE, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:44 + 1000])  # 500 of 40,960 frames
    kept = read_audio(cut, allow_truncated=True)
    assert kept.truncated == "truncated: header declares 10.00 s, file holds 0.12 s"
    np.testing.assert_array_equal(kept.data, read_audio(whole).data[:500])


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_a_placeholder_header_is_read_to_the_end_of_the_file(tmp_path: Path, size: int,
                                                             caplog) -> None:
    whole = tmp_path / "x.wav"
    sf.write(whole, _noise(2), RATE, subtype="PCM_16")
    streamed = bytearray(whole.read_bytes())
    streamed[4:8] = streamed[40:44] = struct.pack("<I", size)  # RIFF and data sizes
    path = tmp_path / f"streamed-{size}.wav"
    path.write_bytes(bytes(streamed))
    layout = inspect(path)
    assert layout.placeholder and layout.declared is None and layout.available == 2 * RATE
    audio_module._said.clear()
    with caplog.at_level(logging.INFO, logger="leakhunter"):
        first = read_audio(path)
        read_audio(path)
    np.testing.assert_array_equal(first.data, read_audio(whole).data)
    assert first.truncated == ""
    said = [r for r in caplog.records if "never written" in r.getMessage()]
    assert len(said) == 1  # once, not per file read
    assert path.read_bytes() == bytes(streamed)  # read through a view: the file unchanged
    with open_sound(path, layout) as sound:
        assert sound.frames == 2 * RATE


def test_a_wav_without_frames_is_empty_without_a_word_of_streaming(tmp_path: Path,
                                                                  caplog) -> None:
    """A header with a data size of 0 and nothing after it is an empty recording, not one
    whose recorder never wrote its sizes."""
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), RATE, subtype="PCM_16")
    audio_module._said.clear()
    with caplog.at_level(logging.INFO, logger="leakhunter"), \
            pytest.raises(AudioError, match="empty"):
        read_audio(path)
    assert not [r for r in caplog.records if "never written" in r.getMessage()]


def test_an_ogg_stream_without_its_end_is_truncated(tmp_path: Path) -> None:
    whole = tmp_path / "x.ogg"
    sf.write(whole, _noise(10), RATE, format="OGG", subtype="VORBIS")
    with pytest.raises(AudioError) as info:
        read_audio(_cut(whole, 0.5))
    assert info.value.kind == "truncated" and "without its end marker" in info.value.reason


def test_long_recordings_in_blocks_are_checked_too(tmp_path: Path) -> None:
    feature, audio = FeatureConfig(sample_rate=RATE), AudioConfig()
    for fmt in ("WAV", "FLAC"):
        whole = tmp_path / f"long.{fmt.lower()}"
        sf.write(whole, _noise(40), RATE, format=fmt, subtype="PCM_16")
        cut = _cut(whole, 0.5)
        assert waveform_pieces(whole, feature, audio, block_s=10).truncated == ""
        with pytest.raises(AudioError) as info:
            waveform_pieces(cut, feature, audio, block_s=10)  # read in 10 s blocks
        assert info.value.kind == "truncated" and "declares 40.00 s" in info.value.reason
        kept = waveform_pieces(cut, feature, AudioConfig(allow_truncated=True), block_s=10)
        samples = sum(p.size for p in kept.pieces)
        assert kept.truncated.startswith("truncated: header declares 40.00 s")
        assert 15 * RATE < samples < 25 * RATE
        assert kept.duration_s == pytest.approx(samples / RATE, abs=0.01)


def test_headers_too_short_or_of_other_kinds_declare_nothing(tmp_path: Path) -> None:
    stub = tmp_path / "stub.wav"
    stub.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00")
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    for path in (stub, text):
        assert inspect(path).declared is None and inspect(path).short_by == 0
    with pytest.raises(OSError):
        inspect(tmp_path / "missing.wav")


def _with_chunk_before_data(path: Path) -> Path:
    """A copy of a WAV with a LIST chunk (odd-sized, padded) between ``fmt `` and ``data``."""
    data = path.read_bytes()
    at = data.index(b"data")
    chunk = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"
    body = data[:at] + chunk + data[at:]
    out = path.with_name("list-" + path.name)
    out.write_bytes(body[:4] + struct.pack("<I", len(body) - 8) + body[8:])
    return out


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_plain_16_bit_wavs_are_read_as_they_lie(tmp_path: Path, channels: int) -> None:
    """A whole 16-bit PCM WAV (plain or WAVE_FORMAT_EXTENSIBLE, other chunks before its
    data) is read without the decoder, bit for bit what libsndfile gives; other kinds,
    and cut files, go through libsndfile as before."""
    x = (np.random.default_rng(channels).integers(-32768, 32767, (4001, channels))
         ).astype(np.int16)
    plain = []
    for fmt in ("WAV", "WAVEX"):
        path = tmp_path / f"{fmt}-{channels}.wav"
        sf.write(path, x, RATE, format=fmt, subtype="PCM_16")
        plain += [path, _with_chunk_before_data(path)]
    for path in plain:
        layout = inspect(path)
        assert layout.pcm16 is not None and layout.pcm16.channels == channels
        got = read_audio(path)
        expected, rate = sf.read(path, dtype="float32", always_2d=True)
        assert got.rate == rate == RATE and np.array_equal(got.data, expected)
    others = []
    for fmt, subtype in (("WAV", "PCM_24"), ("WAV", "FLOAT"), ("RF64", "PCM_16"),
                         ("FLAC", "PCM_16")):
        path = tmp_path / f"{fmt}-{subtype}-{channels}.{'flac' if fmt == 'FLAC' else 'wav'}"
        sf.write(path, x, RATE, format=fmt, subtype=subtype)
        others.append(path)
    for path in others:
        assert inspect(path).pcm16 is None
        expected, _ = sf.read(path, dtype="float32", always_2d=True)
        assert np.array_equal(read_audio(path).data, expected)
    with pytest.raises(AudioError) as info:  # cut: the header's promise is checked first
        read_audio(_cut(plain[0], 0.5))
    assert info.value.kind == "truncated"
