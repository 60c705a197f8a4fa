"""``leakhunter study``: the paper's experiments on the user's recordings (segmentation
grid, model comparison) with sensor-grouped k-fold cross-validation."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from ..config import STUDY_MODELS, StudyConfig
from .flags import common, device_flag, floats, ints, names, option, optional, settings


def add_study(sub: Any) -> None:
    p = sub.add_parser(
        "study", help="the paper's experiments on your recordings: segmentation grid, "
                      "model comparison, sensor-grouped k folds",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "For every long segment x short frame and every model, train and test on k "
            "folds grouped by sensor; write runs.csv, summary.csv, segmentation.png, "
            "models.png, study.md and best_build.toml into STUDY_DIR. Features are built "
            "once per configuration; a stopped study continues where it stopped when run "
            "again.", 79),
        epilog="examples:\n"
               "  leakhunter study recordings/ --out study --epochs 10\n"
               "  leakhunter study recordings/ --out study --long 0.25 --short 512 "
               "--models cnn-mel,mfcc-rf,mfcc-svm")
    p.add_argument("recordings", metavar="RECORDINGS",
                   help="folder of label folders, or a CSV manifest, as for build")
    p.add_argument("--out", required=True, metavar="STUDY_DIR",
                   help="folder for the study's files (default: none, required)")
    d = StudyConfig()
    option(p, ["--long"], "long_s", d, "long segments in seconds", type=floats)
    option(p, ["--short"], "short_points", d, "short frames in points", type=ints)
    option(p, ["--models"], "models", d, f"models to compare: {', '.join(STUDY_MODELS)}",
           type=names)
    option(p, ["--folds"], "folds", d, "sensor-grouped folds; 1: build's fixed split "
           "(--split) instead")
    option(p, ["--seed"], "seed", d, "seed of the folds")
    option(p, ["--validation-share"], "validation_share", d,
           "share of each fold's training sensors held out for early stopping and the "
           "threshold")
    option(p, ["--split"], "build.split.fractions", d, "with --folds 1: TRAINING, "
           "VALIDATION, TESTING fractions", type=floats)
    option(p, ["--storage"], "storage", d, "an Optuna database URL every machine reaches "
           "(sqlite:///study.db, postgresql://...): each machine runs what is left of one "
           "shared study, no run twice; none: this machine alone", type=optional(str))
    option(p, ["--study-name"], "study_name", d, "the study's name in --storage")
    option(p, ["--jobs"], "jobs", d, "runs at once on this machine: CUDA devices in turn, "
           "CPU cores shared out (they share the study through --storage, or "
           "STUDY_DIR/study.db)")
    g = p.add_argument_group("training of each CNN run (as train's flags)")
    option(g, ["--epochs"], "train.epochs", d, "maximum epochs per run")
    option(g, ["--time-budget"], "train.time_budget_s", d, "training seconds per run "
           "(0: none)")
    option(g, ["--patience"], "train.patience", d, "epochs without improvement before a run "
           "stops")
    option(g, ["--batch-size"], "train.batch_size", d, "batch size (0: automatic)")
    option(g, ["--train-seed"], "train.seed", d, "seed of each run's training")
    device_flag(g, "study", what="where each run trains", config=d, path="train.device")
    option(p, ["--sample-rate"], "build.feature.sample_rate", d, "rate the recordings are "
           "brought to, Hz")
    option(p, ["--workers"], "build.workers", d, "processes extracting features (0: one per "
           "CPU core)")
    common(p)
    p.set_defaults(func=run_study_command)


def run_study_command(args: argparse.Namespace) -> int:
    from ..study.study import run_study

    cfg = settings(StudyConfig, args)
    result = run_study(args.recordings, args.out, cfg)
    print(f"study: {result['planned']} runs planned, {result['done_before']} done before, "
          f"{result['ran']} run now ({result['failed']} failed) in "
          f"{result['total_s']:.0f} s (features built in {result['build_s']:.1f} s)")
    for long_s, short, why in result["invalid"]:
        print(f"  skipped {long_s:g} s / {short} points: {why}")
    for path in result["outputs"]:
        print(f"  wrote {path}")
    return 0
