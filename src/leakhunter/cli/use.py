"""The parsers of the commands that use a model: ``predict``, ``export``, ``report``,
``demo``."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import DemoConfig, ReportConfig
from . import commands
from .flags import common, device_flag, device_help, log_flags, option


def add_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict", help="leak decisions on new recordings of any length",
        description="Decide, per recording, leak or not, with the threshold and vote "
                    "fraction the model carries. INPUT: files, folders (recursive) or glob "
                    "patterns; any format and sample rate soundfile reads.")
    p.add_argument("model", metavar="MODEL", help="model file written by train or calibrate")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="recordings, folders or globs")
    p.add_argument("--out", metavar="FILE", default="predictions.csv",
                   help="where to write the decisions (default: predictions.csv)")
    p.add_argument("--format", choices=["csv", "json"], default=None,
                   help="output format (default: from --out's extension, else csv)")
    p.add_argument("--onnx", metavar="MODEL.onnx",
                   help="score with this exported model in onnxruntime (default: torch)")
    p.add_argument("--threshold", type=float, default=None,
                   help="segment threshold (default: the model's)")
    p.add_argument("--vote-fraction", type=float, default=None,
                   help="share of segments that makes a leak (default: the model's)")
    p.add_argument("--aggregate", choices=["vote", "mean", "max"], default=None,
                   help="how segments decide a recording (default: the model's)")
    p.add_argument("--class-aggregate", choices=["vote", "mean"], default=None,
                   help="multi-class: a recording's class by segment vote or mean class "
                        "probability (default: the model's)")
    p.add_argument("--segments", action="store_true",
                   help="also write a per-segment timeline next to --out (default: off)")
    p.add_argument("--workers", type=int, default=0,
                   help="worker processes; 0 = one per CPU core (default: 0)")
    p.add_argument("--min-duration", type=float, default=None, metavar="SECONDS",
                   help="skip recordings shorter than this (status 'too short'); shorter "
                        "than a segment but longer are padded (default: the model's, from "
                        "its dataset's build)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any recording could not be judged (default: off)")
    device_flag(p, "predict")
    p.add_argument("--report", metavar="FILE.html",
                   help="also write the survey report (as `leakhunter report`, default "
                        "settings) (default: none)")
    p.add_argument("--sensors", metavar="FILE.csv",
                   help="also write the sensor-level decisions over nights (default: none)")
    g = p.add_argument_group("daily operations (CSV output)")
    g.add_argument("--resume", action="store_true",
                   help="add to --out: judge only the recordings it lacks, appending each "
                        "row as soon as it is judged; refused if --out was written with "
                        "another model or decision rule (default: off, --out is replaced)")
    g.add_argument("--watch", action="store_true",
                   help="keep running: judge what INPUT folders hold and every recording "
                        "that arrives once completely written, appending to --out as "
                        "--resume does; Ctrl-C or SIGTERM stops (default: off)")
    g.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                   help="--watch: a file is complete when its size and time have not "
                        "changed for this long, or once renamed into place (default: 2)")
    g.add_argument("--poll", type=float, default=None, metavar="SECONDS",
                   help="--watch: look for new files this often instead of waiting for "
                        "file-system events, for network shares (default: events)")
    log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=commands.cmd_predict)


def add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="export a model to ONNX, with the feature front-end inside",
        description="Write an ONNX graph that takes raw waveform segments and returns class "
                    "and leak probabilities, plus model_card.json; checked against PyTorch.")
    p.add_argument("model", metavar="MODEL", help="model file written by train or calibrate")
    p.add_argument("--out", metavar="FILE.onnx", required=True, help="ONNX file to write "
                                                                      "(required)")
    p.add_argument("--int8", action="store_true",
                   help="also write a dynamically quantised int8 model (default: off)")
    p.add_argument("--device", default="auto",
                   help="where the PyTorch reference of the parity check runs: "
                        f"{device_help('export')} (default: auto)")
    log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=commands.cmd_export)


def add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML survey report from predictions",
        description="Summary and model card, sensors over nights with persistence alerts, "
                    "every recording with its segment timeline, spectrogram and audio, and "
                    "review marks exported as a path,label CSV for build and learn. One "
                    "file, no server, no network.")
    p.add_argument("predictions", metavar="PREDICTIONS",
                   help="the CSV or JSON predict wrote (its .info.json and _segments.csv "
                        "beside it are read when present)")
    p.add_argument("--out", metavar="FILE.html", default="survey.html",
                   help="the report to write (default: survey.html)")
    p.add_argument("--model", metavar="MODEL",
                   help="best.pt whose card to show, for predictions without an info file "
                        "(default: the model the info file names)")
    p.add_argument("--sensors", metavar="FILE.csv",
                   help="also write the sensor-level decisions as CSV (default: none)")
    d = ReportConfig()
    option(p, ["--audio"], "audio", d, "embed audio for called leaks, every recording or "
                                        "none", choices=["flagged", "all", "none"])
    option(p, ["--spectrograms"], "spectrograms", d, "embed spectrograms for called leaks, "
                                                     "every recording or none",
           choices=["flagged", "all", "none"])
    option(p, ["--audio-cap-mb"], "audio_cap_mb", d, "most embedded audio in MB; the most "
                                                     "leak-like recordings come first")
    option(p, ["--clip-seconds"], "clip_s", d, "longest clip per recording, around its "
                                               "most leak-like segment")
    option(p, ["--nights"], "nights", d, "a sensor's persistence counts its last NIGHTS "
                                           "recorded nights")
    option(p, ["--min-leak-nights"], "min_leak_nights", d,
           "a sensor alerts when at least this many of those nights were called leaks")
    option(p, ["--workers"], "workers", d, "processes encoding media; 0 = one per core")
    common(p)
    p.set_defaults(func=commands.cmd_report)


def add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="the whole pipeline on generated data: synth to ONNX",
        description="synth -> build -> train -> evaluate -> calibrate for a target "
                    "specificity -> predict on fresh recordings -> export to ONNX, then one "
                    "summary. The folder is rebuilt unless --keep.")
    p.add_argument("--out", metavar="DIR", default="demo",
                   help="folder for every artifact (default: demo)")
    p.add_argument("--keep", action="store_true",
                   help="reuse what an earlier demo left in DIR (default: rebuild)")
    d = DemoConfig()
    option(p, ["--count"], "count", d, "training recordings per label")
    option(p, ["--fresh"], "fresh", d, "fresh recordings per label to predict")
    option(p, ["--duration"], "duration_s", d, "seconds per recording")
    option(p, ["--epochs"], "epochs", d, "maximum training epochs")
    option(p, ["--time-budget"], "time_budget_s", d, "stop training after this many seconds")
    option(p, ["--target-specificity"], "target_specificity", d,
           "the calibrate step's specificity target on VALIDATION")
    option(p, ["--seed"], "seed", d, "random seed of the whole demo")
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda or cuda:N for every step; auto = each step's own "
                        "choice (build and export on the CPU, train, evaluate and predict on "
                        "CUDA when present) (default: auto)")
    log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=commands.cmd_demo)
