"""The parsers of the data commands: ``synth``, ``build``, ``info``."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import MULTICLASS_LABELS, BuildConfig, SynthConfig
from . import commands
from .flags import common, device_help, floats, log_flags, names, option, optional_float


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
           "recordings per label written at gain 1 dB (sensor out of water)")
    option(p, ["--interference"], "interference", d,
           "probability that a recording carries interference bursts")
    option(p, ["--site"], "site", d, "acoustic site: A = metal mains (the default world), "
           "B = plastic mains, busy street (pipe band, resonances, background, interference "
           "all shifted)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the label folders of an existing OUT_DIR (default: refuse)")
    common(p)
    p.set_defaults(func=commands.cmd_synth)


def add_build(sub: Any) -> None:
    p = sub.add_parser(
        "build", help="recordings -> TRAINING/VALIDATION/TESTING HDF5 datasets",
        description="Build the three HDF5 split files from a folder of label folders, an "
                    "already split folder (TRAINING/ VALIDATION/ TESTING/), or a CSV "
                    "manifest (path,label[,split][,group]).")
    p.add_argument("input", metavar="INPUT", help="folder of recordings or CSV manifest")
    p.add_argument("--out", required=True, metavar="DATASET_DIR",
                   help="folder to write the datasets into (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset already in DATASET_DIR (default: refuse)")
    d = BuildConfig()
    option(p, ["--workers"], "workers", d, "worker processes; 0 = one per CPU core, "
                                           "1 = no worker processes")
    option(p, ["--device"], "device", d, "where features are computed: "
           + device_help("build"))
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
    option(g, ["--fmax"], "feature.fmax", d, "highest mel frequency (Hz); none = Nyquist",
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
    g = p.add_argument_group("splitting (when the input does not fix the splits)")
    option(g, ["--split"], "split.fractions", d, "TRAINING,VALIDATION,TESTING fractions",
           type=floats)
    option(g, ["--split-seed"], "split.seed", d, "seed of the split")
    option(g, ["--group-by"], "split.group_by", d,
           "keep each sensor's recordings in one split, or split per recording",
           choices=["sensor", "recording"])
    common(p)
    p.set_defaults(func=commands.cmd_build)


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
    p.set_defaults(func=commands.cmd_info)
