"""The ``leakhunter`` command line: parse, call the library, print.

Settings come from the stage's config dataclass defaults, then ``--config FILE.toml``, then
flags. Errors a user can fix (:class:`LeakhunterError`) print one line and exit 1; Ctrl-C
and SIGTERM exit 130 and 143 after the library has removed its partial files.
"""

from __future__ import annotations

import argparse
import copy
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__, commands, signals
from .commands import CFG, TRAIN
from .config import (AUTO_DEVICE, MULTICLASS_LABELS, BuildConfig, CalibrateConfig, DemoConfig,
                     EvalConfig, LearnConfig, ReportConfig, SynthConfig, TrainConfig,
                     TuneConfig)
from .dataset.sources import SPLIT_ALIASES
from .errors import LeakhunterError
from .log import setup_logging

log = logging.getLogger("leakhunter.cli")


# --- building the parser --------------------------------------------------------------------

def _default(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def _option(parser: argparse.ArgumentParser, flags: Sequence[str], path: str, defaults: Any,
            help: str, **kwargs: Any) -> None:
    """A flag overriding config field ``path``; its help shows the dataclass default."""
    kwargs.setdefault("type", type(_default(defaults, path)))
    if kwargs.get("action") in ("store_true", "store_false"):
        kwargs.pop("type")
    elif "choices" not in kwargs:
        kwargs.setdefault("metavar", flags[0].lstrip("-").upper().replace("-", "_"))
    parser.add_argument(*flags, dest=CFG + path, default=argparse.SUPPRESS,
                        help=f"{help} (default: {_show(_default(defaults, path))})", **kwargs)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def _log_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v/--debug/-q, accepted before and after the command name."""
    kw = {} if default is None else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="count", **(kw or {"default": 0}),
                        help="more log output (default: info; LEAKHUNTER_LOG_LEVEL sets it)")
    parser.add_argument("--debug", action="store_true", **kw,
                        help="debug log output (default: off)")
    parser.add_argument("-q", "--quiet", action="store_true", **kw,
                        help="warnings and errors only, no progress bars (default: off)")


def _device_help(command: str) -> str:
    preferred, why = AUTO_DEVICE[command]
    auto = "CUDA when present" if preferred == "cuda" else "the CPU"
    return f"auto, cpu, cuda or cuda:N; auto = {auto} ({why})"


def _device_flag(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--device", default="auto",
                        help=f"{_device_help(command)} (default: auto)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML file of settings for this command; flags override it "
                             "(default: none)")
    _log_flags(parser, argparse.SUPPRESS)


def _add_synth(sub: Any) -> None:
    p = sub.add_parser("synth", help="write synthetic labelled recordings (demos, tests)",
                       description="Write synthetic hydrophone recordings, one folder per "
                                   "label, named sensor~recording~timestamp~gain.wav.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to create")
    d = SynthConfig()
    _option(p, ["--count"], "count", d, "recordings per label")
    _option(p, ["--seed"], "seed", d, "random seed; the same seed writes identical files")
    _option(p, ["--sample-rate"], "sample_rate", d, "sample rate in Hz")
    _option(p, ["--duration"], "duration_s", d, "length of each recording in seconds")
    _option(p, ["--labels"], "labels", d, "comma-separated label folders", type=_names)
    p.add_argument("--multiclass", action="store_true",
                   help=f"use the five labels {','.join(MULTICLASS_LABELS)} (default: off)")
    _option(p, ["--difficulty"], "difficulty", d,
            "0 = trivially separable, 1 = leak signature near the noise floor")
    _option(p, ["--sensors"], "sensors_per_label", d, "sensors per label")
    _option(p, ["--out-of-water"], "out_of_water", d,
            "recordings per label written at gain 1 dB (sensor out of water)")
    _option(p, ["--interference"], "interference", d,
            "probability that a recording carries interference bursts")
    _option(p, ["--site"], "site", d, "acoustic site: A = metal mains (the default world), "
            "B = plastic mains, busy street (pipe band, resonances, background, interference "
            "all shifted)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the label folders of an existing OUT_DIR (default: refuse)")
    _common(p)
    p.set_defaults(func=commands.cmd_synth)


def _add_build(sub: Any) -> None:
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
    _option(p, ["--workers"], "workers", d, "worker processes; 0 = one per CPU core, "
                                            "1 = no worker processes")
    _option(p, ["--device"], "device", d, "where features are computed: "
            + _device_help("build"))
    _option(p, ["--strict"], "strict", d, "fail when any recording has to be skipped",
            action="store_true")
    _option(p, ["--files-per-task"], "files_per_task", d, "recordings per worker task")
    _option(p, ["--chunk-segments"], "chunk_segments", d, "HDF5 chunk length in segments")
    g = p.add_argument_group("features")
    _option(g, ["--sample-rate"], "feature.sample_rate", d, "feature sample rate in Hz; "
                                                            "audio is resampled to it")
    _option(g, ["--segment-seconds"], "feature.segment_s", d, "long segment length (s)")
    _option(g, ["--segment-overlap"], "feature.segment_overlap", d,
            "overlap of long segments (fraction)")
    _option(g, ["--n-fft"], "feature.n_fft", d, "frame (short segment) length in samples")
    _option(g, ["--frame-overlap"], "feature.frame_overlap", d, "overlap of frames (fraction)")
    _option(g, ["--n-mels"], "feature.n_mels", d, "mel bands")
    _option(g, ["--fmin"], "feature.fmin", d, "lowest mel frequency (Hz)")
    _option(g, ["--fmax"], "feature.fmax", d, "highest mel frequency (Hz); none = Nyquist",
            type=_optional_float)
    _option(g, ["--top-db"], "feature.top_db", d,
            "floor each segment's log-mel this many dB below its peak; none = off",
            type=_optional_float)
    g = p.add_argument_group("audio")
    _option(g, ["--min-gain-db"], "audio.min_gain_db", d,
            "exclude recordings whose name gives a gain at or below this (out of water)")
    _option(g, ["--no-detrend"], "audio.detrend", d, "keep DC offset and linear trend",
            action="store_false")
    _option(g, ["--silence-rms"], "audio.silence_rms", d,
            "RMS (full scale 1) at or below which a recording is silence")
    _option(g, ["--min-duration"], "audio.min_duration_s", d,
            "skip recordings shorter than this (s); longer ones shorter than a segment are "
            "zero-padded to one (predict uses the model's value)")
    g = p.add_argument_group("splitting (when the input does not fix the splits)")
    _option(g, ["--split"], "split.fractions", d, "TRAINING,VALIDATION,TESTING fractions",
            type=_floats)
    _option(g, ["--split-seed"], "split.seed", d, "seed of the split")
    _option(g, ["--group-by"], "split.group_by", d,
            "keep each sensor's recordings in one split, or split per recording",
            choices=["sensor", "recording"])
    _common(p)
    p.set_defaults(func=commands.cmd_build)


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="summarise a dataset folder and check its integrity",
                       description="Splits, classes, segments, recordings, sensors, feature "
                                   "config, and an integrity check of every split file.")
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder written by build")
    p.add_argument("--no-check", action="store_true",
                   help="skip reading every feature value (default: full check)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table "
                                                       "(default: table)")
    _log_flags(p, argparse.SUPPRESS)  # info has no settings, so no --config
    p.set_defaults(func=commands.cmd_info)


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train the leak classifier on a dataset",
        description="Train the CNN on DATASET_DIR's TRAINING split, selecting the model by "
                    "file-level leak F1 on VALIDATION. Under torchrun, trains with DDP.")
    p.add_argument("dataset", metavar="DATASET_DIR", nargs="?",
                   help="folder written by build (not with --resume)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder to create (default: none; "
                                                    "required unless --resume)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last checkpoint (default: off)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in RUN_DIR (default: refuse)")
    d = TrainConfig()
    _option(p, ["--epochs"], "epochs", d, "maximum epochs")
    _option(p, ["--batch-size"], "batch_size", d, "segments per batch (per process); "
                                                   "0 = 256 on CPU, up to 4096 on CUDA")
    _option(p, ["--lr"], "lr", d, "peak learning rate (AdamW); 0 = 2e-3 scaled by "
                                  "sqrt(batch size / 256)")
    _option(p, ["--weight-decay"], "weight_decay", d, "AdamW weight decay")
    _option(p, ["--warmup-epochs"], "warmup_epochs", d, "linear warm-up, then cosine decay")
    _option(p, ["--grad-clip"], "grad_clip", d, "maximum gradient norm; 0 = off")
    _option(p, ["--loss"], "loss", d, "class-weighted cross-entropy or focal loss",
            choices=["ce", "focal"])
    _option(p, ["--focal-gamma"], "focal_gamma", d, "focal loss exponent")
    _option(p, ["--no-class-weights"], "class_weights", d,
            "do not weight the loss by inverse class frequency", action="store_false")
    _option(p, ["--balanced-sampler"], "balanced_sampler", d,
            "draw class-balanced batches instead of weighting the loss", action="store_true")
    _option(p, ["--spec-augment"], "spec_augment", d, "time and frequency masking",
            action="store_true")
    _option(p, ["--mixup"], "mixup", d, "mixup alpha; 0 = off")
    _option(p, ["--patience"], "patience", d, "epochs without better validation F1 before "
                                              "stopping")
    _option(p, ["--time-budget"], "time_budget_s", d, "stop after this many seconds of "
                                                      "training (checked per epoch); 0 = none")
    _option(p, ["--vote-fraction"], "vote_fraction", d, "share of segments that makes a "
                                                        "recording a leak")
    _option(p, ["--target-specificity"], "target_specificity", d,
            "threshold written into best.pt: the most sensitive one with this specificity "
            "on VALIDATION; none = the F1-best", type=_optional_float)
    _option(p, ["--class-aggregate"], "class_aggregate", d,
            "multi-class rule written into best.pt: a recording's class by segment vote or "
            "mean class probability", choices=["vote", "mean"])
    _option(p, ["--positive"], "positive", d, "comma-separated classes that count as a leak",
            type=_names)
    _option(p, ["--seed"], "seed", d, "random seed (weights, batch order, augmentation)")
    _option(p, ["--device"], "device", d, _device_help("train"))
    _option(p, ["--amp"], "amp", d, "mixed precision: auto = fp16 on CUDA, bf16 on CPUs "
                                    "with native bf16, else off",
            choices=["auto", "off", "bf16", "fp16"])
    _option(p, ["--compile"], "compile", d, "torch.compile the model", action="store_true")
    _option(p, ["--preload"], "preload", d, "keep splits in memory: auto = when under 2 GiB",
            choices=["auto", "yes", "no"])
    _option(p, ["--loader-workers"], "loader_workers", d,
            "processes reading batches from disk when not preloaded; 0 = in the trainer")
    _option(p, ["--log-every"], "log_every", d, "steps between running-loss updates")
    g = p.add_argument_group("model")
    _option(g, ["--width"], "model.width", d, "channels of the first conv block")
    _option(g, ["--blocks"], "model.blocks", d, "conv blocks (width doubles each)")
    _option(g, ["--dense"], "model.dense", d, "units of the dense layer")
    _option(g, ["--dropout"], "model.dropout", d, "dropout rate")
    _option(g, ["--aux-weight"], "model.aux_weight", d,
            "multi-class: weight of the auxiliary leak-vs-rest loss")
    _common(p)
    p.set_defaults(func=commands.cmd_train)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="per-segment and per-recording metrics, report, plots",
        description="Score a model on a split with the decision rule the model carries. "
                    "--threshold, --target-specificity, --aggregate and --vote-fraction are "
                    "what-if analyses (a new threshold is chosen on VALIDATION), reported in "
                    "report.json and never written into the model; `leakhunter calibrate` "
                    "makes a new model file with a new rule. Writes RUN_DIR/eval-<split>/.")
    p.add_argument("model", metavar="MODEL", help="model file written by train or calibrate "
                                                  "(only read)")
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder written by build")
    d = EvalConfig()
    _option(p, ["--split"], "split", d, "split to evaluate",
            type=lambda v: SPLIT_ALIASES.get(v.lower(), v.upper()))
    _decision_options(p, d, "the model's")
    _option(p, ["--segments"], "segments", d, "also write segments.csv", action="store_true")
    _option(p, ["--svg"], "svg", d, "also write the plots as SVG", action="store_true")
    p.add_argument("--out", metavar="DIR", help="output folder (default: "
                                                "MODEL's folder/eval-<split>)")
    _device_flag(p, "evaluate")
    _common(p)
    p.set_defaults(func=commands.cmd_evaluate)


def _decision_options(p: argparse.ArgumentParser, d: Any, otherwise: str) -> None:
    """--aggregate, --vote-fraction, --threshold | --target-specificity (evaluate,
    calibrate); ``otherwise`` says what "none" means."""
    _option(p, ["--aggregate"], "aggregate", d, "how segments decide a recording: vote "
                                                f"(a share of segments), mean or max; none = "
                                                f"{otherwise}", choices=["vote", "mean", "max"], type=str)
    _option(p, ["--vote-fraction"], "vote_fraction", d, "share of segments that makes a "
                                                        f"recording a leak; none = {otherwise}",
            type=_optional_float)
    g = p.add_mutually_exclusive_group()
    _option(g, ["--threshold"], "threshold", d, f"fixed segment threshold; none = {otherwise}"
                                                " (re-chosen F1-best on VALIDATION when the "
                                                "aggregation changes)", type=_optional_float)
    _option(g, ["--target-specificity"], "target_specificity", d,
            "choose the most sensitive threshold with this specificity on VALIDATION",
            type=_optional_float)
    _option(p, ["--class-aggregate"], "class_aggregate", d, "multi-class: a recording's "
                                                            "class by segment vote or mean "
                                                            f"class probability; none = "
                                                            f"{otherwise}",
            choices=["vote", "mean"], type=str)


def _add_calibrate(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate", help="a new model file with a new decision rule (the source is kept)",
        description="Choose a decision rule for MODEL on a split of DATASET_DIR (default "
                    "VALIDATION) and write it, with the weights, into a NEW model file that "
                    "records its parent (SHA-256), the dataset, the split and the method. "
                    "MODEL is only read.")
    p.add_argument("model", metavar="MODEL", help="model file written by train or calibrate")
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder written by build")
    p.add_argument("--out", required=True, metavar="NEW_MODEL",
                   help="model file to write (required; never MODEL itself)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing NEW_MODEL (default: refuse)")
    d = CalibrateConfig()
    _option(p, ["--split"], "split", d, "split the threshold is chosen on",
            type=lambda v: SPLIT_ALIASES.get(v.lower(), v.upper()))
    _decision_options(p, d, "the parent model's")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N "
                                                    "(default: auto)")
    _common(p)
    p.set_defaults(func=commands.cmd_calibrate)


def _add_predict(sub: Any) -> None:
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
    _device_flag(p, "predict")
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
    _log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=commands.cmd_predict)


def _add_export(sub: Any) -> None:
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
                        f"{_device_help('export')} (default: auto)")
    _log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=commands.cmd_export)


def _add_report(sub: Any) -> None:
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
    _option(p, ["--audio"], "audio", d, "embed audio for called leaks, every recording or "
                                         "none", choices=["flagged", "all", "none"])
    _option(p, ["--spectrograms"], "spectrograms", d, "embed spectrograms for called leaks, "
                                                      "every recording or none",
            choices=["flagged", "all", "none"])
    _option(p, ["--audio-cap-mb"], "audio_cap_mb", d, "most embedded audio in MB; the most "
                                                      "leak-like recordings come first")
    _option(p, ["--clip-seconds"], "clip_s", d, "longest clip per recording, around its "
                                                "most leak-like segment")
    _option(p, ["--nights"], "nights", d, "a sensor's persistence counts its last NIGHTS "
                                            "recorded nights")
    _option(p, ["--min-leak-nights"], "min_leak_nights", d,
            "a sensor alerts when at least this many of those nights were called leaks")
    _option(p, ["--workers"], "workers", d, "processes encoding media; 0 = one per core")
    _common(p)
    p.set_defaults(func=commands.cmd_report)


def _add_demo(sub: Any) -> None:
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
    _option(p, ["--count"], "count", d, "training recordings per label")
    _option(p, ["--fresh"], "fresh", d, "fresh recordings per label to predict")
    _option(p, ["--duration"], "duration_s", d, "seconds per recording")
    _option(p, ["--epochs"], "epochs", d, "maximum training epochs")
    _option(p, ["--time-budget"], "time_budget_s", d, "stop training after this many seconds")
    _option(p, ["--target-specificity"], "target_specificity", d,
            "the calibrate step's specificity target on VALIDATION")
    _option(p, ["--seed"], "seed", d, "random seed of the whole demo")
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda or cuda:N for every step; auto = each step's own "
                        "choice (build and export on the CPU, train, evaluate and predict on "
                        "CUDA when present) (default: auto)")
    _log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=commands.cmd_demo)


def _copy_train_flags(train: argparse.ArgumentParser, group: Any) -> None:
    """Add train's setting flags to tune, so any train setting can be fixed for a study.
    Their dests start with ``TRAIN``; the per-trial budgets, the seed and the target
    specificity (tune's objective, which the trials' thresholds follow) are tune's own."""
    from .tune.space import SPACE

    searched = {p.path for p in SPACE}
    own = ("epochs", "time_budget_s", "seed", "target_specificity")
    for action in train._actions:
        path = action.dest[len(CFG):]
        if not action.dest.startswith(CFG) or path in own:
            continue
        flag = copy.copy(action)
        flag.dest = TRAIN + path
        if path in searched:
            flag.help = action.help.rsplit(" (default:", 1)[0] + " (default: searched)"
        group._add_action(flag)


def _add_tune(sub: Any) -> None:
    p = sub.add_parser(
        "tune", help="hyperparameter search (Optuna): trials are real train runs",
        description="Search train settings with Optuna. Each trial trains on DATASET_DIR "
                    "with drawn settings; per-epoch validation file F1 prunes poor ones. "
                    "The study lives in STUDY_DIR/study.db (or --storage): re-running "
                    "continues it, and processes on several machines given one --storage "
                    "URL and --study-name share it.")
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder written by build")
    p.add_argument("--out", required=True, metavar="STUDY_DIR",
                   help="study folder: trials.csv, best_config.toml, plots, the best run "
                        "(required)")
    p.add_argument("--space", metavar="FILE.toml",
                   help="narrow or widen the search space (default: the built-in space)")
    p.add_argument("--restart", action="store_true",
                   help="delete the study and its outputs, saying what, then start over "
                        "(default: continue)")
    d = TuneConfig()
    _option(p, ["--trials"], "trials", d, "trials this process runs")
    _option(p, ["--timeout"], "timeout_s", d, "start no trial after this many seconds; "
                                              "0 = none")
    _option(p, ["--epochs"], "epochs", d, "maximum epochs per trial")
    _option(p, ["--time-budget"], "time_budget_s", d, "training seconds per trial (checked "
                                                      "per epoch); 0 = none")
    _option(p, ["--study-name"], "study_name", d, "name of the study in the storage")
    _option(p, ["--storage"], "storage", d, "database URL (sqlite:///..., postgresql://..., "
                                            "mysql://...); none = STUDY_DIR/study.db",
            type=str)
    _option(p, ["--objective"], "objective", d, "validation file F1 alone, or against "
                                                "inference time per segment or parameters",
            choices=["f1", "f1,latency", "f1,params"])
    _option(p, ["--target-specificity"], "target_specificity", d,
            "maximise validation sensitivity at this specificity instead of F1",
            type=_optional_float)
    _option(p, ["--sampler"], "sampler", d, "Optuna sampler", choices=["tpe", "nsga2",
                                                                       "random"])
    _option(p, ["--startup-trials"], "startup_trials", d, "random trials before TPE models")
    _option(p, ["--pruner"], "pruner", d, "how poor trials are stopped early",
            choices=["median", "hyperband", "none"])
    _option(p, ["--pruner-startup-trials"], "pruner_startup_trials", d,
            "finished trials before the median pruner prunes")
    _option(p, ["--pruner-warmup-epochs"], "pruner_warmup_epochs", d,
            "epochs a trial trains before it can be pruned (median pruner)")
    _option(p, ["--seed"], "seed", d, "sampler seed")
    _option(p, ["--keep-trials"], "keep_trials", d, "keep every trial's run directory, not "
                                                    "only the best", action="store_true")
    _option(p, ["--no-baseline"], "baseline", d, "do not start a new study with a trial of "
                                                 "the train defaults", action="store_false")
    g = p.add_argument_group("train settings (one given here, or in the [train] table of "
                             "--config, is fixed and not searched)")
    _copy_train_flags(sub.choices["train"], g)
    _common(p)
    p.set_defaults(func=commands.cmd_tune)


def _add_learn(sub: Any) -> None:
    p = sub.add_parser(
        "learn", help="adapt a model to a new site: select, fine-tune, repeat",
        description="Make the next version of MODEL from new recordings of a site "
                    "(Ma et al. 2025): score every new segment, keep per recording the "
                    "share that agrees most with its label (or, --unlabelled, with the "
                    "model's own confident decision), fine-tune with a replayed share of "
                    "the old training data, repeat for --rounds. MODEL is never modified; "
                    "each round writes RUN_DIR/round-K/best.pt with its lineage.")
    p.add_argument("model", metavar="MODEL", nargs="?", help="the parent best.pt (not with "
                                                             "--resume)")
    p.add_argument("new_input", metavar="NEW_INPUT", nargs="?",
                   help="new recordings: label folders, split folders or a CSV manifest as "
                        "build takes them; with --unlabelled, any folder of recordings")
    p.add_argument("--out", metavar="RUN_DIR", help="learn run folder to create (default: "
                                                    "none; required unless --resume)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the learn run in RUN_DIR where it stopped (default: off)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a learn run already in RUN_DIR (default: refuse)")
    p.add_argument("--unlabelled", action="store_true",
                   help="NEW_INPUT has no labels: learn from the model's confident "
                        "decisions (default: off)")
    p.add_argument("--replay", metavar="DATASET_DIR",
                   help="the parent's dataset: its TRAINING is replayed, its TESTING is the "
                        "forgetting check (default: none)")
    p.add_argument("--truth", metavar="DATASET_DIR",
                   help="--unlabelled: a labelled dataset of the new site whose TESTING "
                        "split is reported (default: none)")
    d = LearnConfig()
    _option(p, ["--keep"], "keep", d, "share of each recording's segments selected: those "
                                      "agreeing most with its label")
    _option(p, ["--confidence"], "confidence", d,
            "--unlabelled: a recording's own decision is used when at least this share of "
            "its segments agree with it")
    _option(p, ["--rounds"], "rounds", d, "select -> fine-tune rounds")
    _option(p, ["--replay-share"], "replay_share", d,
            "share of each round's training segments drawn from --replay's TRAINING")
    _option(p, ["--epochs"], "epochs", d, "fine-tuning epochs per round")
    _option(p, ["--lr"], "lr", d, "peak fine-tuning learning rate")
    _option(p, ["--batch-size"], "batch_size", d, "segments per batch; 0 = automatic")
    _option(p, ["--seed"], "seed", d, "random seed (replay sample, fine-tuning)")
    _option(p, ["--workers"], "workers", d, "processes reading NEW_INPUT; 0 = one per core")
    _option(p, ["--device"], "device", d, _device_help("learn"))
    _common(p)
    p.set_defaults(func=commands.cmd_learn)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leakhunter", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Recordings of water pipes in, leak decisions out.",
        epilog="Run 'leakhunter COMMAND --help' for a command's flags.")
    parser.add_argument("--version", action="version", version=f"leakhunter {__version__}")
    _log_flags(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_synth, _add_build, _add_info, _add_train, _add_evaluate, _add_calibrate,
                _add_predict, _add_export, _add_report, _add_learn, _add_tune, _add_demo):
        add(sub)
    return parser


# --- entry points ---------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv``; returns the exit code (for tests and :func:`run`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose, quiet=args.quiet, debug=args.debug)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except LeakhunterError as exc:
        print(f"leakhunter: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an OS failure at a site without its own message: still one line
        log.debug("operating-system error", exc_info=True)
        print(f"leakhunter: error: {_os_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signals.clear()
        code = exc.exit_code if isinstance(exc, signals.Interrupted) else 130
        what = "terminated" if code == 128 + signal.SIGTERM else "interrupted"
        print(f"leakhunter: {what}; partial output removed", file=sys.stderr)
        return code


def _os_error_line(exc: OSError) -> str:
    """``path: reason [ERRNO]`` for an ``OSError`` that no library step described."""
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    code = f" [{errno.errorcode[exc.errno]}]" if exc.errno in errno.errorcode else ""
    return f"{where}{exc.strerror or exc}{code}"


def run() -> None:
    """Console-script entry point."""
    signals.install()
    sys.exit(main())
