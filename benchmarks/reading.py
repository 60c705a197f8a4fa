"""Benchmark: the cost of checking that a recording holds what its header declares.

leakhunter reads every recording through :func:`leakhunter.recordings.audio.read_audio`,
which parses the header (:mod:`leakhunter.recordings.container`) and decodes against it.
Reference, same run: a plain ``soundfile.read`` of the same files, which names no
truncated file. Both decode the whole file to float32; medians of ``--repeats`` passes over
``--files`` 10 s recordings at 4096 Hz (16-bit WAV and FLAC).

    python benchmarks/reading.py [--files 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from leakhunter.recordings.audio import read_audio


def _files(folder: Path, n: int, fmt: str) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"r{i:04d}.{fmt.lower()}"
        sf.write(path, (0.1 * rng.standard_normal(40960)).astype(np.float32), 4096,
                 format=fmt, subtype="PCM_16")
        paths.append(path)
    return paths


def _median(fn, paths: list[Path], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            fn(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="recordings (default: 200)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (default: 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("WAV", "FLAC"):
            folder = Path(tmp) / fmt
            folder.mkdir()
            paths = _files(folder, args.files, fmt)
            plain = lambda p: sf.read(str(p), dtype="float32", always_2d=True)  # noqa: E731
            ours = _median(read_audio, paths, args.repeats)
            ref = _median(plain, paths, args.repeats)
            print(f"{fmt:<5} read_audio {ours / len(paths) * 1e6:7.0f} us per file, "
                  f"soundfile.read {ref / len(paths) * 1e6:7.0f} us: {ours / ref:.2f}x")


if __name__ == "__main__":
    main()
