"""Reference classifier built with OpenSoundscape 0.13, to compare against leakhunter.

A ResNet-18 from random initialisation (no pretrained weights), one class ``LEAK`` with a
sigmoid output, OpenSoundscape's default spectrogram preprocessing and augmentation, on 1 s
clips of each recording, trained on the CPU for a fixed number of epochs. A recording's score
is the mean of its clips' LEAK scores; the threshold is the one that maximises per-recording
F1 on the validation recordings (ties: the highest). It does not import leakhunter:
``benchmarks/new_site.py --opensoundscape /path/to/python`` runs it with that environment's
Python and reads the JSON it writes.

Environment (separate from leakhunter's; the torch/torchvision pins match each other)::

    python3.11 -m venv oss-venv
    oss-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    oss-venv/bin/pip install "opensoundscape==0.13.*" torch==2.14.1 torchvision==0.29.1

Usage::

    oss-venv/bin/python benchmarks/opensoundscape_ref.py --train train.csv \\
        --validation validation.csv --test test.csv --out scores.json --seed 0 --epochs 4 \\
        [--workers 2] [--batch-size 64]

Each CSV has the header ``path,label`` (label LEAK or NOLEAK; absolute paths to mono WAV
files, 4096 Hz). Output: {"threshold", "train_s", "predict_s", "test": [{"path", "score"}],
"validation": [...], "opensoundscape", "torch", "parameters"}.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import opensoundscape
import pandas as pd
import torch
from opensoundscape import CNN
from opensoundscape.utils import make_clip_df

CLASSES = ["LEAK"]
LABELS = {"LEAK": 1, "NOLEAK": 0}
SAMPLE_RATE = 4096  # Hz; recordings at another rate are resampled by OSS's preprocessor
CLIP_S = 1.0


def read_split(csv: str) -> pd.DataFrame:
    """One row per recording: index = path (named 'file'), column LEAK in {0, 1}."""
    df = pd.read_csv(csv)
    if list(df.columns) != ["path", "label"]:
        sys.exit(f"{csv}: expected header 'path,label', got {list(df.columns)}")
    bad = sorted(set(df["label"]) - set(LABELS))
    if bad:
        sys.exit(f"{csv}: unknown labels {bad} (expected LEAK or NOLEAK)")
    out = pd.DataFrame({"LEAK": df["label"].map(LABELS).astype(int).values},
                       index=pd.Index(df["path"].astype(str), name="file"))
    return out


def clips(files: pd.DataFrame) -> pd.DataFrame:
    """Split each recording into consecutive 1 s clips, each labelled as its recording."""
    clip_df, invalid = make_clip_df(files, clip_duration=CLIP_S, clip_overlap=0,
                                    final_clip="extend", return_invalid_samples=True)
    if invalid:
        sys.exit(f"could not read: {sorted(invalid)}")
    return clip_df


def score_recordings(model: CNN, files: pd.DataFrame, workers: int, batch: int) -> pd.Series:
    """Mean sigmoid LEAK score over each recording's clips, in the CSV's order."""
    # raise_errors=True is broken in OSS 0.13.2's predict (AttributeError: is_alternative);
    # a clip that fails to load scores NaN instead, and main() refuses NaN recording scores.
    scores = model.predict(clips(files)[[]], batch_size=batch, num_workers=workers,
                           activation_layer="sigmoid", progress_bar=False)
    per_file = scores["LEAK"].groupby(level="file", sort=False).mean()
    return per_file.reindex(files.index)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold (predict LEAK when score >= t) maximising F1; ties go to the highest t."""
    best_t, best_f1 = float(np.max(scores)), -1.0
    for t in np.unique(scores)[::-1]:  # highest first, so a tie keeps the higher threshold
        pred = scores >= t
        tp = int(np.sum(pred & (labels == 1)))
        fp, fn = int(np.sum(pred & (labels == 0))), int(np.sum(~pred & (labels == 1)))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if f1 > best_f1:
            best_t, best_f1 = float(t), f1
    return best_t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--validation", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: in process)")
    ap.add_argument("--batch-size", type=int, default=64, help="OSS's default is 64")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    train, validation, test = (read_split(c) for c in (args.train, args.validation, args.test))
    train_clips = clips(train)

    # single_target=False (OSS's default): one sigmoid output trained with BCE. With a single
    # class, single_target=True would mean softmax over one logit (always 1, zero gradient),
    # and OSS's CrossEntropyLoss_hot rejects the all-zero NOLEAK targets.
    # arch_weights=None: torchvision's resnet18(weights=None), random init, nothing downloaded.
    model = CNN("resnet18", classes=CLASSES, sample_duration=CLIP_S, sample_rate=SAMPLE_RATE,
                single_target=False, arch_weights=None, device="cpu")
    model.verbose = 0
    warnings.filterwarnings("ignore", message="No validation set was provided")
    steps = args.epochs * math.ceil(len(train_clips) / args.batch_size)
    # OSS's default schedule (warm-up then cosine decay) is laid over 1000 steps; lay it over
    # this run's steps instead so that the learning rate actually decays.
    model.lr_scheduler_params["kwargs"]["max_steps"] = steps
    print(f"training: {len(train)} recordings, {len(train_clips)} clips, {args.epochs} epochs "
          f"= {steps} steps of {args.batch_size}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="oss_ref_") as tmp:
        t0 = time.perf_counter()
        # No validation set here: a fixed number of epochs, the last weights kept (OSS would
        # otherwise pick a checkpoint by validation score). OSS saves its checkpoints to tmp.
        model.train(train_clips, validation_df=None, steps=steps, batch_size=args.batch_size,
                    num_workers=args.workers, save_path=tmp, log_interval=steps,
                    validation_interval=steps, invalid_samples_log=None, raise_errors=True,
                    progress_bar=False, reload_best_at_end=False)
        train_s = time.perf_counter() - t0

    val_scores = score_recordings(model, validation, args.workers, args.batch_size)
    t0 = time.perf_counter()
    test_scores = score_recordings(model, test, args.workers, args.batch_size)
    predict_s = time.perf_counter() - t0
    for name, s in (("validation", val_scores), ("test", test_scores)):
        if s.isna().any():
            sys.exit(f"no score for {name} recordings: {list(s.index[s.isna()])}")

    threshold = best_threshold(val_scores.to_numpy(), validation["LEAK"].to_numpy())
    result = {
        "threshold": threshold,
        "train_s": train_s,
        "predict_s": predict_s,
        "test": [{"path": p, "score": float(s)} for p, s in test_scores.items()],
        "validation": [{"path": p, "score": float(s)} for p, s in val_scores.items()],
        "opensoundscape": opensoundscape.__version__,
        "torch": torch.__version__,
        "parameters": int(sum(p.numel() for p in model.network.parameters())),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"trained in {train_s:.1f} s, scored {len(test)} test recordings in {predict_s:.1f} s,"
          f" threshold {threshold:.4f} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
