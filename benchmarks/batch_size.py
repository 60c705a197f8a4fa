"""Benchmark: whole training runs at several batch sizes, for choosing the default one.

One-epoch figures (benchmarks/train.py) show the speed of a batch size but not what it
costs in accuracy: a larger batch takes fewer steps per epoch. This trains the same dataset
for ``--epochs`` epochs (early stopping off) at each batch size (learning rate automatic,
2e-3 * sqrt(batch / 256)), optionally compiled, and prints for each: the whole run's wall
time, the median epoch speed (segments/s, first epoch left out: it holds compilation and
cuDNN's warm-up), the best validation file F1, and the test file F1 of its best.pt, beside
the first setting (the reference) as ratios.

    PYTHONPATH=src python3 benchmarks/batch_size.py DATASET [--device auto]
        [--runs 4096,8192,8192c] [--epochs 10] [--out DIR] [--json FILE]

A run written ``8192c`` is batch 8192 with ``--compile``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

from leakhunter.config import EvalConfig, TrainConfig
from leakhunter.decisions.evaluate import evaluate
from leakhunter.training.train import train


def one_run(dataset: Path, out: Path, device: str, batch: int, compile_: bool,
            epochs: int) -> dict:
    """Train, then evaluate best.pt on TESTING; the run's figures."""
    cfg = TrainConfig(epochs=epochs, batch_size=batch, compile=compile_, device=device,
                      patience=epochs)
    start = time.perf_counter()
    train(dataset, out, cfg, overwrite=True)
    wall = time.perf_counter() - start
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    speeds = [float(r["segments_per_s"]) for r in rows[1:]] or [float(rows[0]["segments_per_s"])]
    report = evaluate(out / "best.pt", dataset, EvalConfig(), out_dir=out / "eval",
                      device=device)
    return {"batch": batch, "compile": compile_, "epochs": len(rows), "wall_s": wall,
            "segments_per_s": statistics.median(speeds),
            "best_val_file_f1": max(float(r["val_file_f1"]) for r in rows),
            "test_file_f1": report["recordings"]["f1"],
            "peak_gib": max(float(r["gpu_memory_peak_gib"] or "nan") for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a built dataset folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--runs", default="4096,8192,8192c",
                        help="comma-separated batch sizes, a trailing c = compiled; the "
                             "first is the reference (default: 4096,8192,8192c)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default: 10)")
    parser.add_argument("--out", type=Path, default=None,
                        help="work folder for the runs (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="leakhunter-bench-batch-"))
    results: list[dict] = []
    for spec in args.runs.split(","):
        compile_ = spec.endswith("c")
        batch = int(spec.rstrip("c"))
        try:
            r = one_run(args.dataset, work / spec, args.device, batch, compile_, args.epochs)
        except Exception as exc:  # noqa: BLE001  report and go on to the next setting
            print(f"batch {spec}: FAILED {type(exc).__name__}: {exc}", flush=True)
            continue
        results.append(r)
        ref = results[0]
        print(f"batch {batch:6d}{' compiled' if compile_ else '         '}: "
              f"{r['wall_s']:6.1f} s for {r['epochs']} epochs "
              f"({ref['wall_s'] / r['wall_s']:.2f}x the reference), "
              f"{r['segments_per_s']:10,.0f} segments/s "
              f"({r['segments_per_s'] / ref['segments_per_s']:.2f}x), best val file F1 "
              f"{r['best_val_file_f1']:.4f}, test file F1 {r['test_file_f1']:.4f}, "
              f"peak {r['peak_gib']:.2f} GiB", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
