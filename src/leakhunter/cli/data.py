"""The data commands: ``synth`` (synthetic recordings), ``synth-pairs`` (generated sensor
pairs with known leak positions), ``build`` (recordings to HDF5 splits), ``info`` (a
dataset's summary and integrity check). Each ``add_*`` builds the
command's parser and sets the ``run_*`` after it as its ``func``; library imports happen
inside the ``run_*`` so ``leakhunter --help`` stays fast."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import MULTICLASS_LABELS, BuildConfig, PairSynthConfig, SynthConfig
from .flags import (
    common,
    device_flag,
    floats,
    log_flags,
    low_high,
    names,
    option,
    optional_float,
    settings,
)

# --- synth ----------------------------------------------------------------------------------

def add_synth(sub: Any) -> None:
    p = sub.add_parser("synth", help="write synthetic labelled recordings (demos, tests)",
                       description="Write synthetic hydrophone recordings, one folder per "
                                   "label, named sensor~recording~timestamp~gain.wav.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to create")
    d = SynthConfig()
    option(p, ["--count"], "count", d, "recordings per label")
    option(p, ["--seed"], "seed", d, "random seed; the same seed writes identical files")
    option(p, ["--sample-rate"], "sample_rate", d, "sample rate in Hz")
    option(p, ["--duration"], "duration_s", d, "length of each recording in seconds")
    option(p, ["--labels"], "labels", d, "comma-separated label folders", type=names)
    p.add_argument("--multiclass", action="store_true",
                   help=f"use the five labels {','.join(MULTICLASS_LABELS)} (default: off)")
    option(p, ["--difficulty"], "difficulty", d,
           "0 = trivially separable, 1 = leak signature near the noise floor")
    option(p, ["--sensors"], "sensors_per_label", d, "sensors per label")
    option(p, ["--out-of-water"], "out_of_water", d,
           "recordings per label written at gain 1 dB (sensor out of water); unless given, "
           "at most --count - 1")
    option(p, ["--interference"], "interference", d,
           "probability that a recording carries interference bursts")
    option(p, ["--site"], "site", d, "acoustic site: A = metal mains (the default world), "
           "B = plastic mains, busy street (pipe band, resonances, background, interference "
           "all shifted), C = asbestos cement beside a pumping station (another shift)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the label folders of an existing OUT_DIR (default: refuse)")
    common(p)
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from ..recordings.synth.synth import synthesize

    base = {"labels": list(MULTICLASS_LABELS)} if args.multiclass else None
    cfg = settings(SynthConfig, args, base)
    summary = synthesize(args.out_dir, cfg, overwrite=args.overwrite)
    print(f"wrote {summary.files} recordings ({summary.total_seconds / 60:.1f} min of audio) "
          f"to {summary.out_dir}")
    for label, n in summary.per_label.items():
        print(f"  {label:<14} {n:>6} recordings, {len(summary.sensors[label])} sensors")
    print(f"  {summary.out_of_water} out of water (gain 1 dB), "
          f"{summary.with_interference} with interference bursts")
    return 0


# --- synth-pairs ----------------------------------------------------------------------------

def add_synth_pairs(sub: Any) -> None:
    p = sub.add_parser("synth-pairs",
                       help="write generated sensor pairs with known leak positions "
                            "(correlator tests and benchmarks)",
                       description="Write pairs of synchronised recordings of two sensors on "
                                   "a pipe, named sensor~recording~timestamp~gain.wav under "
                                   "OUT_DIR/recordings, with the truth in OUT_DIR/pairs.csv "
                                   "(usable as a correlator's --pairs) and the layout in "
                                   "OUT_DIR/sensors.csv.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to create")
    d = PairSynthConfig()
    option(p, ["--count"], "count", d, "pairs to write")
    option(p, ["--seed"], "seed", d, "random seed; the same seed writes identical files")
    option(p, ["--sample-rate"], "sample_rate", d, "sample rate in Hz")
    option(p, ["--duration"], "duration_s", d, "length of each recording in seconds")
    option(p, ["--materials"], "materials", d,
           "comma-separated pipe materials, drawn uniformly per pair", type=names)
    option(p, ["--span"], "span_m", d,
           "sensor spacing in metres, drawn uniformly", type=low_high,
           metavar="LOW,HIGH")
    option(p, ["--snr"], "snr_db", d, "per sensor, the leak noise re the sensor noise in dB "
           "(RMS, whole band), drawn uniformly; a negative LOW needs '=': --snr=-12,6",
           type=low_high, metavar="LOW,HIGH")
    option(p, ["--no-leak-share"], "no_leak_share", d, "share of pairs without a leak")
    option(p, ["--interference-share"], "interference_share", d,
           "share of pairs with common-mode noise from beyond one end")
    option(p, ["--interference-db"], "interference_db", d,
           "that noise at the nearer sensor re the leak there (re the sensor noise "
           "without a leak), dB; a negative LOW needs '=': --interference-db=-10,0",
           type=low_high, metavar="LOW,HIGH")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the recordings and CSV files of an existing OUT_DIR "
                        "(default: refuse)")
    common(p)
    p.set_defaults(func=run_synth_pairs)


def run_synth_pairs(args: argparse.Namespace) -> int:
    from ..locate.synth_pairs import synthesize_pairs

    cfg = settings(PairSynthConfig, args)
    summary = synthesize_pairs(args.out_dir, cfg, overwrite=args.overwrite)
    print(f"wrote {summary.pairs} pairs ({summary.total_seconds / 60:.1f} min of audio) to "
          f"{summary.out_dir}")
    print(f"  {summary.leak_pairs} with a leak, {summary.pairs - summary.leak_pairs} without, "
          f"{summary.with_interference} with interference")
    print(f"  truth: {summary.pairs_csv}")
    return 0


# --- build ----------------------------------------------------------------------------------

def add_build(sub: Any) -> None:
    p = sub.add_parser(
        "build", help="recordings -> TRAINING/VALIDATION/TESTING HDF5 datasets",
        description="Build the three HDF5 split files from a folder of label folders, an "
                    "already split folder (TRAINING/ VALIDATION/ TESTING/), or a CSV "
                    "manifest (path,label[,split][,group]).")
    p.add_argument("input", metavar="INPUT", help="folder of recordings or CSV manifest")
    p.add_argument("--out", required=True, metavar="DATASET_DIR",
                   help="folder to write the datasets into (default: none, required)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset already in DATASET_DIR (default: refuse)")
    d = BuildConfig()
    option(p, ["--workers"], "workers", d, "worker processes; 0 = one per CPU core, "
                                           "1 = no worker processes")
    device_flag(p, "build", what="where features are computed", config=d)
    option(p, ["--strict"], "strict", d, "fail when any recording has to be skipped",
           action="store_true")
    option(p, ["--files-per-task"], "files_per_task", d, "recordings per worker task")
    option(p, ["--chunk-segments"], "chunk_segments", d, "HDF5 chunk length in segments")
    g = p.add_argument_group("features")
    option(g, ["--sample-rate"], "feature.sample_rate", d, "feature sample rate in Hz; "
                                                           "audio is resampled to it")
    option(g, ["--segment-seconds"], "feature.segment_s", d, "long segment length (s)")
    option(g, ["--segment-overlap"], "feature.segment_overlap", d,
           "overlap of long segments (fraction)")
    option(g, ["--n-fft"], "feature.n_fft", d, "frame (short segment) length in samples")
    option(g, ["--frame-overlap"], "feature.frame_overlap", d, "overlap of frames (fraction)")
    option(g, ["--n-mels"], "feature.n_mels", d, "mel bands")
    option(g, ["--fmin"], "feature.fmin", d, "lowest mel frequency (Hz)")
    option(g, ["--fmax"], "feature.fmax", d, "highest mel frequency (Hz); none = the lowest "
           "Nyquist frequency among the recordings (bands above it would carry nothing), at "
           "most sample-rate / 2",
           type=optional_float)
    option(g, ["--top-db"], "feature.top_db", d,
           "floor each segment's log-mel this many dB below its peak; none = off",
           type=optional_float)
    g = p.add_argument_group("audio")
    option(g, ["--min-gain-db"], "audio.min_gain_db", d,
           "exclude recordings whose name gives a gain at or below this (out of water)")
    option(g, ["--no-detrend"], "audio.detrend", d, "keep DC offset and linear trend",
           action="store_false")
    option(g, ["--silence-rms"], "audio.silence_rms", d,
           "RMS (full scale 1) at or below which a recording is silence")
    option(g, ["--min-duration"], "audio.min_duration_s", d,
           "skip recordings shorter than this (s); longer ones shorter than a segment are "
           "zero-padded to one (predict uses the model's value)")
    option(g, ["--allow-truncated"], "audio.allow_truncated", d,
           "keep the part that is there of a file holding less than its header declares "
           "(an upload cut off), with a warning, instead of skipping it", action="store_true")
    g = p.add_argument_group("splitting (when the input does not fix the splits)")
    option(g, ["--split"], "split.fractions", d, "TRAINING,VALIDATION,TESTING fractions",
           type=floats)
    option(g, ["--split-seed"], "split.seed", d, "seed of the split")
    option(g, ["--group-by"], "split.group_by", d,
           "keep each sensor's recordings in one split, or split per recording",
           choices=["sensor", "recording"])
    common(p)
    p.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    from ..dataset.build import build_dataset

    cfg = settings(BuildConfig, args)
    report = build_dataset(args.input, args.out, cfg, overwrite=args.overwrite)
    _print_splits(report["splits"], report["labels"])
    t = report["timings"]
    print(f"{len(report['skipped'])} skipped, {len(report['excluded_out_of_water'])} out of "
          f"water, {report['padded']} padded to one segment, {len(report['duplicates'])} "
          f"duplicate sets; "
          f"{report['audio_s'] / 3600:.2f} h of audio in {t['total_s']:.1f} s "
          f"({report['speed_x_realtime']:.0f}x real time, {report['workers']} workers)")
    if report["truncated"]:
        print(f"  {len(report['truncated'])} truncated recording(s) kept as they are "
              f"(--allow-truncated; listed in build_report.json)")
    for item in report["skipped"][:10]:
        print(f"  skipped {item['path']}: {item['reason']}")
    if len(report["skipped"]) > 10:
        print(f"  ... and {len(report['skipped']) - 10} more (see build_report.json)")
    print(f"dataset written to {args.out}")
    return 0


# --- info -----------------------------------------------------------------------------------

def add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="summarise a dataset folder and check its integrity",
                       description="Splits, classes, segments, recordings, sensors, feature "
                                   "config, and an integrity check of every split file.")
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder written by build")
    p.add_argument("--no-check", action="store_true",
                   help="skip reading every feature value (default: full check)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table "
                                                       "(default: table)")
    log_flags(p, argparse.SUPPRESS)  # info has no settings, so no --config
    p.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    """Prints the summary; exit 1 when the integrity check found problems."""
    from ..dataset.info import inspect_dataset

    info = inspect_dataset(args.dataset, check=not args.no_check)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"dataset {info['path']}")
        print(f"labels: {', '.join(info['labels'])}; input shape "
              f"{' x '.join(map(str, info['input_shape']))} (mels x frames)")
        fc = info["feature_config"]
        if fc:
            print("features: " + ", ".join(f"{k}={v}" for k, v in fc.items()))
        _print_splits(info["splits"], info["labels"])
        if info["problems"]:
            print(f"integrity: {len(info['problems'])} problem(s)")
            for problem in info["problems"]:
                print(f"  - {problem}")
        else:
            print("integrity: OK" if args.no_check is False else "integrity: not checked "
                  "(--no-check)")
        for note in info.get("notes", []):
            print(f"  note: {note}")
    return 1 if info["problems"] else 0


def _print_splits(splits: dict[str, Any], labels: list[str]) -> None:
    """build and info: one row per split, recordings per class last."""
    head = (f"{'split':<11}{'recordings':>11}{'segments':>10}{'sensors':>8}{'padded':>8}  "
            f"per class (recordings)")
    print(head)
    for name, sp in splits.items():
        sensors = sp["sensors"] if isinstance(sp["sensors"], int) else len(sp["sensors"])
        per = "  ".join(f"{lab}={sp['recordings_per_class'].get(lab, 0)}" for lab in labels)
        print(f"{name:<11}{sp['recordings']:>11}{sp['segments']:>10}{sensors:>8}"
              f"{sp.get('padded', 0):>8}  {per}")
