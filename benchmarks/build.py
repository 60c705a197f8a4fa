"""Benchmark: `leakhunter build` against a straightforward librosa builder, same run.

The reference does what a plain builder does: per recording, ``librosa.load`` (resampling to
the feature rate), then per long segment ``librosa.feature.melspectrogram`` +
``power_to_db``, appended to an HDF5 file. leakhunter builds the same recordings with its
defaults (all cores). Both are timed in-process after their imports (median of
``--repeats`` runs); leakhunter's CLI wall time, start-up included, is printed too.

Peak memory: the whole process tree of ``leakhunter build`` (main process and workers,
sampled every 20 ms) at N and at 10 N recordings.

    python benchmarks/build.py [--recordings 300] [--repeats 3] [--out bench-out]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import soundfile as sf
from memory import peak_memory  # benchmarks/memory.py

from leakhunter.config import BuildConfig, FeatureConfig, SynthConfig
from leakhunter.dataset.build import build_dataset
from leakhunter.recordings.synth.synth import synthesize


def reference_build(root: Path, out: Path, cfg: FeatureConfig) -> float:
    """Per recording, per segment librosa features written to HDF5; returns seconds."""
    import librosa  # imported before timing by the caller's warm-up

    files = sorted(root.rglob("*.wav"))
    start = time.perf_counter()
    with h5py.File(out, "w") as h5:
        mel = h5.create_dataset("mel", (0, cfg.n_mels, cfg.frames_per_segment),
                                maxshape=(None, cfg.n_mels, cfg.frames_per_segment),
                                dtype=np.float16, chunks=(512, cfg.n_mels,
                                                          cfg.frames_per_segment))
        for path in files:
            y, _ = librosa.load(path, sr=cfg.sample_rate)
            segs = []
            for s in range(cfg.n_segments(len(y))):
                seg = y[s * cfg.segment_hop: s * cfg.segment_hop + cfg.segment_samples]
                power = librosa.feature.melspectrogram(
                    y=seg, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.frame_hop,
                    center=False, n_mels=cfg.n_mels)
                segs.append(librosa.power_to_db(power, top_db=cfg.top_db))
            n = mel.shape[0]
            mel.resize(n + len(segs), axis=0)
            mel[n:] = np.stack(segs).astype(np.float16)
    return time.perf_counter() - start


def leakhunter_build(root: Path, out: Path) -> float:
    start = time.perf_counter()
    build_dataset(root, out, BuildConfig(), overwrite=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=300,
                        help="N, recordings in the timed set (default: 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs each (default: 3)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="leakhunter-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.recordings
    small, large = work / "rec-n", work / "rec-10n"
    for root, count in ((small, n), (large, 10 * n)):
        if not root.exists():
            synthesize(root, SynthConfig(count=count // 2, out_of_water=0, seed=11))
    audio_s = sum(sf.info(str(p)).duration for p in small.rglob("*.wav"))

    import librosa  # noqa: F401  (import outside the timing, as for leakhunter)
    reference_build(small, work / "warm.h5", FeatureConfig())  # numba and caches warm
    ref = [reference_build(small, work / "ref.h5", FeatureConfig()) for _ in range(args.repeats)]
    ours = [leakhunter_build(small, work / "ds") for _ in range(args.repeats)]
    cli = [sys.executable, "-m", "leakhunter", "-q", "build", "--overwrite", "--out"]
    wall_n, peak_n = peak_memory([*cli, str(work / "ds-cli"), str(small)])
    wall_10n, peak_10n = peak_memory([*cli, str(work / "ds-10n"), str(large)])

    r, o = statistics.median(ref), statistics.median(ours)
    print(f"recordings: N = {n} ({audio_s / 60:.0f} min of audio, 4096 Hz, 10 s each)")
    print(f"reference (librosa per segment, 1 process): {r:8.2f} s  "
          f"{audio_s / r:8.0f}x real time")
    print(f"leakhunter build (in-process, all cores):    {o:8.2f} s  "
          f"{audio_s / o:8.0f}x real time")
    print(f"speed-up: {r / o:.1f}x  (target >= 20x)")
    print(f"leakhunter CLI wall time, start-up included:  {wall_n:.2f} s at N, "
          f"{wall_10n:.2f} s at 10 N")
    print(f"peak memory (process tree): {peak_n:.0f} MiB at N, {peak_10n:.0f} MiB at 10 N, "
          f"ratio {peak_10n / peak_n:.2f}  (target <= 1.2)")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
