"""Benchmark: one epoch of `leakhunter train` against a bare training loop, same run.

The bare loop is the same model, optimiser, batch size and number of steps on tensors
already in memory, and nothing else: no data path, no augmentation, no metrics, no
validation, no checkpoints. Two ratios are printed: the whole one-epoch run (start-up
included: loading the splits, normalisation statistics, validation, checkpoints) and the
training phase alone. Medians of ``--repeats`` runs. On CUDA the segments/s are printed too.

    python benchmarks/train.py [--recordings 300] [--repeats 3] [--device auto]
                               [--batch-sizes 0,256,4096] [--compile]
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
from leakhunter.model.cnn import LeakCNN
from leakhunter.recordings.synth.synth import synthesize
from leakhunter.runtime import devices
from leakhunter.runtime.amp import resolve_amp
from leakhunter.training.batches import resolve_auto
from leakhunter.training.train import train


def bare_epoch(dataset: Path, cfg: TrainConfig, device: torch.device) -> tuple[float, int]:
    """Seconds for one epoch of the plainest loop, and the segments it saw (``cfg`` with
    its batch size and learning rate resolved)."""
    data = load_split(dataset / SPLIT_FILES["TRAINING"], "yes")
    x = data.mel.float().to(device)
    y = torch.from_numpy(data.label).to(device)
    torch.manual_seed(0)
    model = LeakCNN(x.shape[1], x.shape[2], len(data.labels), [0], cfg.model).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # as leakhunter does
    net = torch.compile(model) if cfg.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    perm = torch.randperm(x.shape[0], device=device)
    precision = resolve_amp(cfg.amp, device)  # the same precision leakhunter uses
    amp = precision != "off"
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    devices.synchronize(device)
    start = time.perf_counter()
    for lo in range(0, x.shape[0] - 1, cfg.batch_size):
        idx = perm[lo:lo + cfg.batch_size]
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    devices.synchronize(device)
    return time.perf_counter() - start, x.shape[0]


def leakhunter_epoch(dataset: Path, run: Path, cfg: TrainConfig) -> dict[str, float]:
    """One-epoch `train` call: wall seconds, and its metrics.csv row (training phase
    ``epoch_s``, ``val_file_f1``, ``gpu_memory_peak_gib``)."""
    start = time.perf_counter()
    train(dataset, run, cfg, overwrite=True)
    wall = time.perf_counter() - start
    with (run / "metrics.csv").open() as fh:
        row = next(csv.DictReader(fh))
    return {"wall_s": wall, "epoch_s": float(row["epoch_s"]),
            "val_file_f1": float(row["val_file_f1"]),
            "gpu_memory_peak_gib": float(row["gpu_memory_peak_gib"] or "nan")}


def measure(dataset: Path, run: Path, device: torch.device, batch_size: int, repeats: int,
            compile: bool = False) -> dict[str, float]:
    """Medians of ``repeats`` bare epochs and one-epoch leakhunter runs at ``batch_size``
    (0: leakhunter's automatic choice for ``device``, used by both)."""
    segments = load_split(dataset / SPLIT_FILES["TRAINING"], "no").segments
    cfg = resolve_auto(TrainConfig(epochs=1, device=str(device), batch_size=batch_size,
                                   compile=compile), device, segments)
    bare_epoch(dataset, cfg, device)  # warm-up: allocator, kernels, caches
    bare = statistics.median(bare_epoch(dataset, cfg, device)[0] for _ in range(repeats))
    ours = [leakhunter_epoch(dataset, run, cfg) for _ in range(repeats)]
    return {"batch": cfg.batch_size, "lr": cfg.lr, "segments": segments,
            "precision": resolve_amp(cfg.amp, device), "bare_s": bare,
            **{k: statistics.median(o[k] for o in ours) for k in ours[0]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=300,
                        help="synthetic recordings in the dataset (default: 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs each (default: 3)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-sizes", default="0",
                        help="comma-separated batch sizes; 0 = leakhunter's automatic "
                             "choice (default: 0)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model in both loops (default: off)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="leakhunter-bench-train-"))
    dataset = work / "dataset"
    if not (dataset / "build_report.json").exists():
        synthesize(work / "recordings", SynthConfig(count=args.recordings // 2, seed=5),
                   overwrite=True)
        build_dataset(work / "recordings", dataset, BuildConfig(), overwrite=True)
    choice = devices.resolve(args.device, "train")
    print(f"device: {choice.describe()}")
    print(f"{'batch':>6} {'lr':>8} {'precision':>9} {'bare seg/s':>11} {'ours seg/s':>11} "
          f"{'ratio':>6} {'whole run':>9} {'val F1':>7}")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        r = measure(dataset, work / "run", choice.device, batch, args.repeats, args.compile)
        print(f"{r['batch']:>6} {r['lr']:>8.2g} {r['precision']:>9} "
              f"{r['segments'] / r['bare_s']:>11.0f} {r['segments'] / r['epoch_s']:>11.0f} "
              f"{r['epoch_s'] / r['bare_s']:>6.2f} {r['wall_s']:>8.1f}s "
              f"{r['val_file_f1']:>7.4f}")
    print("ratio: leakhunter's training phase over the bare loop (target <= 1.15); whole "
          "run: one-epoch `train`, loading, statistics, validation and checkpoints included")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
