"""Checks of written figures: a PNG file is whole and not suspiciously small."""

from __future__ import annotations

from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The eight bytes every PNG file starts with."""


def assert_png(path: Path) -> None:
    """``path`` is a PNG file of more than 5 kB (a drawn figure, not an empty canvas)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 5_000, f"{path} is suspiciously small ({len(data)} bytes)"
