"""Benchmark: what a `leakhunter tune` trial costs beyond the `train` run inside it.

Reference: ``--trials`` calls of :func:`leakhunter.train.train` with one fixed setting,
each into a fresh run directory. Tune: a study of as many trials whose search space is
switched off entirely, so every trial trains exactly that setting; the difference is the
study's own work (the SQLite study, the per-epoch reports, the inference-cost
measurement, trials.csv and best_config.toml after each trial, the plots at the end).
Medians of ``--repeats`` runs, both measured in the same run.

    python benchmarks/tune.py [--recordings 60] [--trials 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from leakhunter.config import (
    BuildConfig,
    ModelConfig,
    SynthConfig,
    TrainConfig,
    TuneConfig,
    to_dict,
)
from leakhunter.dataset.build import build_dataset
from leakhunter.recordings.synth.synth import synthesize
from leakhunter.training.train import train
from leakhunter.tune.space import SPACE
from leakhunter.tune.study import run_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=60, help="recordings per label "
                                                                   "(default: 60)")
    parser.add_argument("--trials", type=int, default=4, help="trials per run (default: 4)")
    parser.add_argument("--repeats", type=int, default=3, help="runs (default: 3)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="leakhunter-bench-tune-"))
    try:
        synthesize(root / "rec", SynthConfig(count=args.recordings, duration_s=4.0))
        build_dataset(root / "rec", root / "ds", BuildConfig())
        cfg = TrainConfig(epochs=2, model=ModelConfig(width=16, blocks=2, dense=64))
        space = root / "space.toml"
        space.write_text("".join(f"[{p.name}]\noff = true\n" for p in SPACE))
        tune_cfg = TuneConfig(trials=args.trials, epochs=cfg.epochs, pruner="none")
        plain, tuned = [], []
        for rep in range(args.repeats):
            started = time.perf_counter()
            for i in range(args.trials):
                train(root / "ds", root / f"plain-{rep}-{i}", cfg, overwrite=True)
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            run_study(root / "ds", root / f"study-{rep}", tune_cfg, to_dict(cfg),
                      fixed=set(), space_file=space)
            tuned.append(time.perf_counter() - started)
        p, t = statistics.median(plain), statistics.median(tuned)
        print(f"{args.trials} trials of 2 epochs, median of {args.repeats} runs")
        print(f"  train() alone     {p:7.2f} s  ({p / args.trials:.2f} s per run)")
        print(f"  leakhunter tune   {t:7.2f} s  ({t / args.trials:.2f} s per trial)")
        print(f"  ratio tune/train  {t / p:7.2f}   (study work per trial: "
              f"{(t - p) / args.trials:.2f} s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
