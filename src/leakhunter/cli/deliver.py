"""The commands that deliver what a model decided, or the whole pipeline at once: ``export``
(a model to ONNX), ``report`` (the HTML survey report of a predictions file), ``demo``
(synth to ONNX on generated data). Each ``add_*`` builds the command's parser and sets the
``run_*`` after it as its ``func``; library imports happen inside the ``run_*`` so
``leakhunter --help`` stays fast."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import DemoConfig, ReportConfig
from .flags import common, device_flag, log_flags, option, settings
from .output import check_report_files, report_outputs

# --- export ---------------------------------------------------------------------------------

def add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="export a model to ONNX, with the feature front-end inside",
        description="Write an ONNX graph that takes raw waveform segments and returns class "
                    "and leak probabilities, plus model_card.json; checked against PyTorch.")
    p.add_argument("model", metavar="MODEL", help="model file written by train or calibrate")
    p.add_argument("--out", metavar="FILE.onnx", required=True,
                   help="ONNX file to write (default: none, required)")
    p.add_argument("--int8", action="store_true",
                   help="also write a dynamically quantised int8 model (default: off)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing FILE.onnx, <stem>.int8.onnx or "
                        "model_card.json (every export names its card so: one exported "
                        "model per folder) (default: refuse)")
    device_flag(p, "export", what="where the PyTorch reference of the parity check runs")
    log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..model.export import CARD_NAME, export_onnx
    from ..runtime.outputs import refuse_clashes, refuse_existing

    out = Path(args.out)
    written = [("--out", out), ("the model card", out.with_name(CARD_NAME)),
               ("the int8 model", out.with_name(out.stem + ".int8.onnx"))]
    refuse_clashes(written, [("MODEL", args.model)], "choose another --out")
    refuse_existing([("", out), ("an earlier export's int8 model", written[2][1])],
                    args.overwrite)
    refuse_existing([("the card of an earlier export into that folder: one per folder",
                      written[1][1])], args.overwrite, instead="another folder for --out")
    card = export_onnx(args.model, args.out, int8=args.int8, device=args.device)
    print(f"wrote {args.out} and {Path(args.out).with_name('model_card.json')}")
    parity = card["parity"]
    print(f"parity with PyTorch on {parity['segments']} segments: max |difference| "
          f"{parity['max_abs_diff_leak_probability']:.1e} (leak probability), "
          f"{parity['max_abs_diff_class_probabilities']:.1e} (class probabilities); "
          f"tolerance {parity['tolerance']:g}")
    if card.get("int8"):
        q = card["int8"]
        print(f"int8 model {q['file']}: max |difference| "
              f"{q['max_abs_diff_leak_probability']:.1e} (reported, not enforced)")
    return 0


# --- report ---------------------------------------------------------------------------------

def add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML survey report from predictions",
        description="Summary and model card, sensors over nights with persistence alerts, "
                    "every recording with its segment timeline, spectrogram and audio, "
                    "review marks exported as a path,label CSV for build and learn, and "
                    "with --locations where the correlator placed leaks between sensors. "
                    "One file, no server, no network.")
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
    p.add_argument("--locations", metavar="FILE.csv",
                   help="the locations.csv of `leakhunter locate`: draw each pair's position "
                        "and interval between its sensors, with its correlation plot "
                        "(default: none)")
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
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    cfg = settings(ReportConfig, args)
    check_report_files(args)
    report_outputs(Path(args.predictions), args.out, args.sensors, cfg, model=args.model,
                   locations=args.locations)
    return 0


# --- demo -----------------------------------------------------------------------------------

def add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="the whole pipeline on generated data: synth to ONNX",
        description="synth -> build -> train -> evaluate -> calibrate for a target "
                    "specificity -> predict on fresh recordings -> survey report -> export "
                    "to ONNX, then one summary. The folder is rebuilt unless --keep.")
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
    device_flag(p, None, what="where every step runs")
    log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from .. import demo

    summary = demo.run_demo(args.out, settings(DemoConfig, args), keep=args.keep,
                            device=args.device)
    t, d, f = summary["test"], summary["decision"], summary["fresh"]
    print(f"\nleakhunter demo finished in {summary['total_s']:.0f} s "
          f"({', '.join(f'{k} {v:g} s' for k, v in summary['timings_s'].items())})")
    for name, path in summary["artifacts"].items():
        print(f"  {name:<16} {path}")
    print(f"threshold in best.pt, chosen by train on VALIDATION: {d['threshold']:.4f} "
          f"({d['how']})")
    print(f"TESTING, {summary['test_recordings']} recordings: accuracy {t['accuracy']:.4f}, "
          f"precision {t['precision']:.4f}, sensitivity {t['sensitivity']:.4f}, "
          f"specificity {t['specificity']:.4f}, F1 {t['f1']:.4f}")
    c = summary["calibrated"]
    print(f"calibrated for specificity >= {c['target_specificity']:g} on VALIDATION: "
          f"threshold {c['decision']['threshold']:.4f} in "
          f"{summary['artifacts']['calibrated model']}; on TESTING specificity "
          f"{c['test']['specificity']:.4f}, sensitivity {c['test']['sensitivity']:.4f}")
    print(f"fresh recordings: {f['called_leak']} of {f['judged']} judged called leaks "
          f"({f['true_leaks_called']} of the {f['true_leaks']} real leaks); "
          f"{f['recordings'] - f['judged']} not judged (out of water)")
    print(f"ONNX export parity with PyTorch: {summary['onnx_parity']:.1e}")
    return 0
