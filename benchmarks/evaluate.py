"""Benchmark: batched per-recording evaluation against a per-file loop and bare inference.

On a generated split of several hundred recordings, in the same run:

* **leakhunter**: read the split, score every segment in large batches across
  recordings, regroup per recording and vote (what `leakhunter evaluate` does).
* **per-file loop**: for each recording, read its segments from the HDF5 file, run the
  model on them, vote; next recording (what the original system did).
* **bare inference**: the model over all segments already in memory, nothing else.

Medians of ``--repeats`` runs. Targets: >= 3x faster than the per-file loop, within 1.2x of
bare inference.

    python benchmarks/evaluate.py [--recordings 600] [--duration 10] [--repeats 5]
                                  [--device auto]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from leakhunter.config import BuildConfig, SplitConfig, SynthConfig
from leakhunter.dataset.build import build_dataset
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.decisions.evaluate import predict_segments
from leakhunter.model.cnn import LeakCNN
from leakhunter.model.metrics import recording_scores
from leakhunter.runtime import devices
from leakhunter.runtime.amp import resolve_amp


def batched(path: Path, model: LeakCNN, device: torch.device, autocast) -> np.ndarray:
    data = load_split(path, "yes")
    prob, _ = predict_segments(model, data, device, autocast=autocast)
    return recording_scores(data.file_index, prob, data.recordings, "vote", 0.5) >= 0.5


@torch.no_grad()
def per_file(path: Path, model: LeakCNN, device: torch.device, autocast) -> np.ndarray:
    decisions = []
    with h5py.File(path, "r") as h5:
        first, count = h5["files/first_segment"][()], h5["files/segment_count"][()]
        for lo, n in zip(first, count):
            x = torch.from_numpy(h5["mel"][lo:lo + n].astype(np.float32)).to(device)
            with autocast:
                prob = model.leak_probability(model(x))
            decisions.append(float((prob >= 0.5).float().mean()) >= 0.5)
    return np.array(decisions)


@torch.no_grad()
def bare(x: torch.Tensor, model: LeakCNN, autocast, batch: int) -> None:
    for lo in range(0, x.shape[0], batch):
        with autocast:
            model.leak_probability(model(x[lo:lo + batch]))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(path: Path, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of batched evaluation, the per-file loop and bare inference of the
    split file ``path`` on ``device`` (same decisions checked first)."""
    precision = resolve_amp("auto", device)
    autocast = torch.autocast(device.type, dtype=torch.float16 if precision == "fp16"
                              else torch.bfloat16, enabled=precision != "off")
    data = load_split(path, "yes")
    model = LeakCNN(32, 7, 2, [0]).to(device).eval()
    x = data.mel.float().to(device)
    batch = 4096 if device.type == "cuda" else 256  # predict_segments' default

    assert (batched(path, model, device, autocast) == per_file(path, model, device,
                                                               autocast)).all()
    return {"recordings": data.recordings, "segments": data.segments,
            "precision": precision,
            "batched_s": timed(lambda: batched(path, model, device, autocast), repeats),
            "loop_s": timed(lambda: per_file(path, model, device, autocast), repeats),
            "bare_s": timed(lambda: bare(x, model, autocast, batch), repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=600,
                        help="synthetic recordings; 80 %% form the evaluated split "
                             "(default: 600)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per recording (default: 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs each (default: 5)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="leakhunter-bench-eval-"))
    dataset = work / "dataset"
    if not (dataset / "build_report.json").exists():
        synthesize_and_build(work, args.recordings, args.duration)
    device = devices.resolve(args.device, "evaluate").device
    r = measure(dataset / SPLIT_FILES["TESTING"], device, args.repeats)
    print(f"device: {device}, precision {r['precision']}; {r['recordings']} recordings, "
          f"{r['segments']} segments")
    print(f"bare inference (segments in memory): {r['bare_s']:7.3f} s")
    print(f"leakhunter batched evaluation:       {r['batched_s']:7.3f} s  "
          f"{r['batched_s'] / r['bare_s']:.2f}x bare (target <= 1.2)")
    print(f"per-file loop:                       {r['loop_s']:7.3f} s  "
          f"leakhunter is {r['loop_s'] / r['batched_s']:.1f}x faster (target >= 3)")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


def synthesize_and_build(work: Path, recordings: int, duration: float) -> None:
    from leakhunter.recordings.synth.synth import synthesize

    synthesize(work / "recordings", SynthConfig(count=recordings // 2, seed=9,
                                                duration_s=duration, sensors_per_label=40),
               overwrite=True)
    build_dataset(work / "recordings", work / "dataset",
                  BuildConfig(split=SplitConfig(fractions=(0.1, 0.1, 0.8))), overwrite=True)


if __name__ == "__main__":
    main()
