"""Benchmark: one epoch of `leakhunter train` against a bare training loop, same run.

The bare loop is the same model, optimiser, batch size and number of steps on tensors
already in memory, and nothing else: no data path, no augmentation, no metrics, no
validation, no checkpoints. Two ratios are printed: the whole one-epoch run (start-up
included: loading the splits, normalisation statistics, validation, checkpoints) and the
training phase alone. Medians of ``--repeats`` runs. On CUDA the segments/s are printed too.

    python benchmarks/train.py [--recordings 300] [--repeats 3] [--device auto]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from leakhunter.config import BuildConfig, SynthConfig, TrainConfig
from leakhunter.dataset.build import build_dataset
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.model import LeakCNN
from leakhunter.synth import synthesize
from leakhunter.precision import resolve_amp
from leakhunter.train import train


def bare_epoch(dataset: Path, cfg: TrainConfig, device: torch.device) -> tuple[float, int]:
    """Seconds for one epoch of the plainest loop, and the segments it saw."""
    data = load_split(dataset / SPLIT_FILES["TRAINING"], "yes")
    x = data.mel.float().to(device)
    y = torch.from_numpy(data.label).to(device)
    torch.manual_seed(0)
    model = LeakCNN(x.shape[1], x.shape[2], len(data.labels), [0], cfg.model).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # as leakhunter does
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    perm = torch.randperm(x.shape[0], device=device)
    precision = resolve_amp(cfg.amp, device)  # the same precision leakhunter uses
    amp = precision != "off"
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    _sync(device)
    start = time.perf_counter()
    for lo in range(0, x.shape[0] - 1, cfg.batch_size):
        idx = perm[lo:lo + cfg.batch_size]
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    _sync(device)
    return time.perf_counter() - start, x.shape[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def leakhunter_epoch(dataset: Path, run: Path, cfg: TrainConfig) -> tuple[float, float]:
    """Wall seconds of a one-epoch `train` call, and its training phase (metrics.csv)."""
    start = time.perf_counter()
    train(dataset, run, cfg, overwrite=True)
    wall = time.perf_counter() - start
    with (run / "metrics.csv").open() as fh:
        return wall, float(next(csv.DictReader(fh))["epoch_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=300,
                        help="synthetic recordings in the dataset (default: 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs each (default: 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="leakhunter-bench-train-"))
    dataset = work / "dataset"
    if not (dataset / "build_report.json").exists():
        synthesize(work / "recordings", SynthConfig(count=args.recordings // 2, seed=5),
                   overwrite=True)
        build_dataset(work / "recordings", dataset, BuildConfig(), overwrite=True)
    device_name = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else args.device
    device = torch.device(device_name)
    cfg = TrainConfig(epochs=1, device=device_name)

    bare_epoch(dataset, cfg, device)  # warm-up: allocator, kernels, caches
    bare = [bare_epoch(dataset, cfg, device) for _ in range(args.repeats)]
    ours = [leakhunter_epoch(dataset, work / "run", cfg) for _ in range(args.repeats)]
    b = statistics.median(t for t, _ in bare)
    segments = bare[0][1]
    wall = statistics.median(w for w, _ in ours)
    phase = statistics.median(p for _, p in ours)
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'})")
    print(f"one epoch: {segments} training segments, batch {cfg.batch_size}, precision "
          f"{resolve_amp(cfg.amp, device)}")
    print(f"bare loop (tensors in memory):         {b:7.2f} s  {segments / b:9.0f} segments/s")
    print(f"leakhunter train, training phase:      {phase:7.2f} s  {segments / phase:9.0f} "
          f"segments/s  ratio {phase / b:.2f}")
    print(f"leakhunter train, whole one-epoch run: {wall:7.2f} s  ratio {wall / b:.2f}  "
          f"(loading, statistics, validation, checkpoints included)")
    print("target: training phase <= 1.15x the bare loop")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
