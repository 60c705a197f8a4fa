"""What a recording's header promises, against what the file holds.

An upload cut off, or a logger whose card filled, leaves a file whose header declares more
sound than follows it. libsndfile reads such a WAV as a shorter recording and says so only
in its ``extra_info`` text, and a cut FLAC fails part-way through decoding; read naively
either becomes a short recording with the folder's label, or a file called unreadable.
:func:`inspect` reads the header itself:

* **WAV** (RIFF, RIFX, RF64): the ``data`` chunk's size (RF64: the ``ds64`` chunk's), in
  frames of the ``fmt`` chunk's block alignment, against the bytes after the chunk's start;
* **AIFF / AIFC**: ``COMM``'s frame count against the ``SSND`` chunk's bytes (uncompressed
  sound; compressed AIFC declares frames but only decoding tells what is there);
* **FLAC**: STREAMINFO's total samples (decoding tells what is there).

Other containers (Ogg, MP3, ...) declare no length in a header read here; libsndfile's own
checks apply to them. A WAV whose sizes are a streaming recorder's placeholders (0 or
0xFFFFFFFF: written before the length was known and never updated) declares nothing: its
sound runs to the end of the file, and :func:`open_sound` reads it so even where
libsndfile would read nothing (a size of 0). For a plain 16-bit PCM WAV the header also
says where its samples lie (:class:`Pcm16`), and a whole one is read from there without
the decoder.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import soundfile as sf

PLACEHOLDERS = (0, 0xFFFFFFFF)
"""WAV chunk sizes a streaming recorder writes before it knows the length."""

_AIFC_PCM = {b"NONE", b"sowt", b"twos", b"raw ", b"in24", b"in32", b"fl32", b"fl64"}


@dataclass(frozen=True)
class Pcm16:
    """Where a plain 16-bit little-endian PCM WAV keeps its samples: ``offset`` (bytes from
    the file's start to the ``data`` chunk's first sample), ``channels``, ``rate`` (Hz).
    Such samples need no decoder: they are read as they lie."""

    offset: int
    channels: int
    rate: int


@dataclass(frozen=True)
class Layout:
    """What a recording's header says of its length, in sample frames.

    ``declared``: the frames the header promises (``None``: it does not say);
    ``available``: the frames whose bytes the file holds (``None``: only decoding tells);
    ``placeholder``: a WAV whose sizes were never written; ``size_fields``: for it, the
    byte offsets of its RIFF and ``data`` sizes and the values they should have held.
    """

    declared: int | None = None
    available: int | None = None
    placeholder: bool = False
    size_fields: tuple[tuple[int, bytes], ...] = ()
    pcm16: Pcm16 | None = None  # a plain 16-bit WAV: where its samples lie

    @property
    def short_by(self) -> int:
        """Frames the header declares beyond those the file holds (0 when whole or when
        only decoding can tell)."""
        if self.declared is None or self.available is None:
            return 0
        return max(0, self.declared - self.available)


def inspect(path: str | Path) -> Layout:
    """The :class:`Layout` of the file at ``path`` (an empty one for a container that
    declares no length, or a header too damaged to read: the decoder judges those).
    Raises ``OSError`` when the file cannot be opened."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        try:
            if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
                return _wav(fh, head, size)
            if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                return _aiff(fh, size, compressed_ok=head[8:12] == b"AIFF")
            if head[:4] == b"fLaC":
                return _flac(head + fh.read(30))
        except struct.error:  # the header itself is cut short: the decoder says more
            pass
    return Layout()


def _chunks(fh: IO[bytes], endian: str, size: int) -> Any:
    """``(id, body offset, body size)`` of each chunk after the 12-byte form header."""
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            return
        length = struct.unpack(endian + "I", header[4:])[0]
        yield header[:4], pos + 8, length
        if header[:4] in (b"data", b"SSND"):
            return  # the sound runs on; nothing after it matters here
        pos += 8 + length + (length & 1)  # chunks are padded to even lengths


def _wav(fh: IO[bytes], head: bytes, size: int) -> Layout:
    endian = ">" if head[:4] == b"RIFX" else "<"
    block = 0
    ds64_data: int | None = None
    plain: tuple[int, int] | None = None  # (channels, rate) of 16-bit little-endian PCM
    for cid, start, length in _chunks(fh, endian, size):
        if cid == b"fmt " and length >= 14:
            fh.seek(start)
            fmt = fh.read(min(length, 26))
            block = struct.unpack(endian + "H", fmt[12:14])[0]
            plain = _plain_pcm16(fmt) if head[:4] == b"RIFF" else None
        elif cid == b"ds64" and length >= 16:
            fh.seek(start + 8)
            ds64_data = struct.unpack("<Q", fh.read(8))[0]
        elif cid == b"data" and block:
            available = (size - start) // block
            data_size = ds64_data if head[:4] == b"RF64" else length
            riff = struct.unpack(endian + "I", head[4:8])[0]
            if data_size in PLACEHOLDERS or (head[:4] != b"RF64" and riff in PLACEHOLDERS):
                whole = size - start
                fields = () if head[:4] == b"RF64" else (
                    (4, struct.pack(endian + "I", min(size - 8, 0xFFFFFFFF))),
                    (start - 4, struct.pack(endian + "I", min(whole, 0xFFFFFFFF))))
                return Layout(None, available, True, fields)
            pcm16 = Pcm16(start, *plain) if plain else None
            return Layout(data_size // block, available, pcm16=pcm16)
    return Layout()


_PCM, _EXTENSIBLE = 1, 0xFFFE  # WAVE format tags


def _plain_pcm16(fmt: bytes) -> tuple[int, int] | None:
    """``(channels, rate)`` when a little-endian ``fmt `` chunk's body declares 16-bit
    integer PCM (plainly, or as WAVE_FORMAT_EXTENSIBLE with the PCM sub-format)."""
    if len(fmt) < 16:
        return None
    tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE:  # the sub-format GUID's first two bytes are the real tag
        tag = struct.unpack("<H", fmt[24:26])[0] if len(fmt) >= 26 else 0
    if tag != _PCM or bits != 16 or channels < 1 or block != 2 * channels or rate < 1:
        return None
    return channels, rate


def _aiff(fh: IO[bytes], size: int, compressed_ok: bool) -> Layout:
    frames = frame_bytes = None
    for cid, start, length in _chunks(fh, ">", size):
        if cid == b"COMM" and length >= 18:
            fh.seek(start)
            body = fh.read(min(length, 22))
            channels, frames, bits = struct.unpack(">hIh", body[:8])
            kind = body[18:22] if len(body) >= 22 else b"NONE"
            if compressed_ok or kind in _AIFC_PCM:
                frame_bytes = channels * ((bits + 7) // 8)
        elif cid == b"SSND" and frames is not None:
            fh.seek(start)
            offset = struct.unpack(">I", fh.read(4))[0]
            first = start + 8 + offset  # past SSND's offset and block-size fields
            available = (size - first) // frame_bytes if frame_bytes else None
            return Layout(frames, available)
    return Layout(frames, None) if frames is not None else Layout()


def _flac(head: bytes) -> Layout:
    # 'fLaC', a metadata block header (type 0 = STREAMINFO), then 34 bytes of STREAMINFO:
    # sample rate (20 bits), channels - 1 (3), bits - 1 (5), total samples (36) from byte 10
    if len(head) < 4 + 4 + 18 or head[4] & 0x7F != 0:
        return Layout()
    packed = int.from_bytes(head[8 + 10:8 + 18], "big")
    total = packed & ((1 << 36) - 1)
    return Layout(total or None, None)  # 0: the encoder did not know it


@contextmanager
def open_sound(path: str | Path, layout: Layout) -> Iterator[sf.SoundFile]:
    """``path`` opened for reading (closed when the block ends); a placeholder WAV through
    :class:`_Patched`, which shows libsndfile the sizes the recorder never wrote (the file
    itself is not changed). Raises what ``soundfile`` raises for a file it cannot open."""
    if layout.placeholder and layout.size_fields:
        with _Patched(path, layout.size_fields) as raw, sf.SoundFile(raw) as sound:
            yield sound
    else:
        with sf.SoundFile(str(path)) as sound:
            yield sound


class _Patched(io.RawIOBase):
    """A read-only view of a file with a few bytes replaced (``fields``: offset, bytes)."""

    def __init__(self, path: str | Path, fields: tuple[tuple[int, bytes], ...]):
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 (closed with this object)
        self._fields = fields
        self.name = str(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, n: int = -1) -> bytes:
        start = self._fh.tell()
        data = bytearray(self._fh.read(n))
        for offset, value in self._fields:  # the replaced bytes that fall in this read
            lo, hi = max(offset, start), min(offset + len(value), start + len(data))
            if lo < hi:
                data[lo - start:hi - start] = value[lo - offset:hi - offset]
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()
