"""Benchmark: what a `leakhunter study` costs, and what its feature cache saves.

On generated demo-like recordings (`synth`, 200 per label, 10 s, as `make demo` makes them;
`--count` and `--duration` change that), for cells of the paper's grid (0.125–1.0 s x
64–1,024 points: 24 valid cells; `--cells N` measures every k-th of them so the run stays
short, and says so):

* the feature build of the cell, timed (what the cache does once per cell);
* one CNN run of the cell's first fold at a fixed epoch budget (`--epochs`), timed.

From these, the cost of the whole 24-cell x `--folds`-fold study on 2 cores is projected
(per cell: one build + folds x the measured run; the unmeasured cells at the measured
cells' mean), with the cache's share of it, beside the reference measured in the same run:
the same study without the cache, where each fold builds its cell's features again
(folds x build + folds x run), as a ratio.

    python benchmarks/study.py [--cells 4] [--folds 5] [--epochs 2] [--count 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from leakhunter.cli import main as cli
from leakhunter.config import (
    PAPER_LONG_S,
    PAPER_SHORT,
    BuildConfig,
    StudyConfig,
    TrainConfig,
)
from leakhunter.dataset import mel_range
from leakhunter.dataset.sources import discover
from leakhunter.recordings.audio import parse_name
from leakhunter.study.cache import cached_features, fold_dataset, identity
from leakhunter.study.folds import sensor_folds
from leakhunter.study.grid import make_grid
from leakhunter.study.runs import run_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=4, help="cells measured (default 4)")
    parser.add_argument("--folds", type=int, default=5, help="folds of the projected study")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per CNN run")
    parser.add_argument("--count", type=int, default=200, help="recordings per label")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds each")
    parser.add_argument("--work", help="folder for the recordings and features (default: "
                                       "a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        recordings = work / "recordings"
        if not recordings.is_dir():
            cli(["synth", str(recordings), "--count", str(args.count), "--duration",
                 str(args.duration), "-q"])
        return _measure(work, recordings, args)


def _measure(work: Path, recordings: Path, args: argparse.Namespace) -> int:
    sources = discover(recordings).sources
    paths = [s.path for s in sources]
    cfg = StudyConfig(folds=args.folds, build=BuildConfig(),
                      train=TrainConfig(epochs=args.epochs))
    base = replace(cfg.build, feature=mel_range.fitted(cfg.build.feature, paths))
    grid = make_grid(PAPER_LONG_S, PAPER_SHORT, base.feature, cfg.train.model)
    step = max(1, len(grid.cells) // args.cells)
    measured = grid.cells[::step][:args.cells]
    folds = sensor_folds([s.label for s in sources],
                         [parse_name(s.path).sensor_id for s in sources], args.folds,
                         cfg.seed, cfg.validation_share)
    recordings_id = identity(sources)
    print(f"{len(sources)} recordings; {len(grid.cells)} valid cells, {len(measured)} "
          f"measured; {args.folds} folds; {args.epochs} epochs per run")
    print("\n| cell | build (s) | one run (s) |\n| --- | ---: | ---: |")
    builds, runs = [], []
    for cell in measured:
        t = time.perf_counter()
        features = cached_features(work, cell, base, sources, recordings_id).folder
        builds.append(time.perf_counter() - t)
        fold_dir = fold_dataset(features, folds[0], paths, work / "fold" / "dataset")
        t = time.perf_counter()
        run_model("cnn-mel", fold_dir, work / "fold", cfg.train, cfg.train.seed)
        runs.append(time.perf_counter() - t)
        print(f"| {cell.key} | {builds[-1]:.1f} | {runs[-1]:.1f} |")
        sys.stdout.flush()
    n, k = len(grid.cells), args.folds
    build, run = statistics.mean(builds), statistics.mean(runs)
    cached = n * (build + k * run)
    uncached = n * k * (build + run)
    print(f"\nprojected {n} cells x {k} folds, cnn-mel, {args.epochs} epochs per run:")
    print(f"  with the cache: {cached / 3600:.2f} h, of which feature builds "
          f"{n * build / cached:.1%}")
    print(f"  reference, a build per fold: {uncached / 3600:.2f} h, of which feature "
          f"builds {n * k * build / uncached:.1%}")
    print(f"  the cache saves {uncached - cached:.0f} s: {uncached / cached:.2f}x less time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
