"""The commands that judge recordings with a model: ``evaluate`` (metrics on a dataset
split), ``calibrate`` (a new model file with a new decision rule), ``predict`` (decisions on
new recordings, also incrementally with ``--resume``/``--watch``, and the sensor decisions
and survey report it can write beside them). Each ``add_*`` builds the command's parser and
sets the ``run_*`` after it as its ``func``; library imports happen inside the ``run_*`` so
``leakhunter --help`` stays fast."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from ..config import CalibrateConfig, EvalConfig, ReportConfig
from ..dataset.sources import SPLIT_ALIASES
from ..errors import LeakhunterError
from .flags import common, device_flag, log_flags, option, optional_float, settings
from .output import check_predict_files, report_outputs

log = logging.getLogger(__name__)

NEW_SITE_SHARE = 0.1  # predict warns, naming learn, when more of a run is unfamiliar

# --- evaluate -------------------------------------------------------------------------------

def add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="per-segment and per-recording metrics, report, plots",
        description="Score a model on a split with the decision rule the model carries. "
                    "--threshold, --target-specificity, --aggregate and --vote-fraction are "
                    "what-if analyses (a new threshold is chosen on VALIDATION), reported in "
                    "report.json and never written into the model; `leakhunter calibrate` "
                    "makes a new model file with a new rule. Writes eval-<split>/ beside "
                    "MODEL (a what-if: eval-<split>-whatif/), or --out.")
    p.add_argument("model", metavar="MODEL", help="model file written by train or calibrate "
                                                  "(only read)")
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder written by build")
    d = EvalConfig()
    option(p, ["--split"], "split", d, "split to evaluate",
           type=lambda v: SPLIT_ALIASES.get(v.lower(), v.upper()))
    _decision_options(p, d, "the model's")
    option(p, ["--segments"], "segments", d, "also write segments.csv", action="store_true")
    option(p, ["--svg"], "svg", d, "also write the plots as SVG", action="store_true")
    p.add_argument("--out", metavar="DIR", help="output folder (default: MODEL's folder/"
                                                "eval-<split>, eval-<split>-whatif for a "
                                                "what-if)")
    device_flag(p, "evaluate")
    common(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from ..decisions.evaluate import evaluate

    cfg = settings(EvalConfig, args)
    report = evaluate(args.model, args.dataset, cfg, out_dir=args.out, device=args.device)
    d, ds = report["decision"], report["dataset"]
    print(f"{ds['split']}: {ds['recordings']} recordings, {ds['segments']} segments; "
          f"threshold {d['threshold']:.4f} ({d['how']}); recordings decided by "
          f"{d['aggregate']}" + (f" (fraction {d['vote_fraction']:g})"
                                 if d["aggregate"] == "vote" else ""))
    if d["what_if"]:
        print(f"what-if rule ({d['source']}), not the model's and not saved; "
              f"`leakhunter calibrate` makes a model file with it")
    cols = ("accuracy", "precision", "sensitivity", "specificity", "f1", "roc_auc", "pr_auc")
    print(f"{'':<12}" + "".join(f"{c:>12}" for c in cols))
    for level in ("segments", "recordings"):
        row = report[level]
        print(f"{level:<12}" + "".join(
            f"{row[c]:>12.4f}" if row[c] is not None else f"{'n/a':>12}" for c in cols))
    r = report["recordings"]
    print(f"recordings: {r['tp']} leaks found, {r['fn']} missed, {r['fp']} false alarms, "
          f"{r['tn']} correctly quiet")
    if ds.get("padded"):
        print(f"{ds['padded']} recording(s) shorter than one segment, zero-padded to one")
    _print_familiarity(report.get("familiarity"))
    if "classes" in report:
        _print_classes(report["classes"])
    for item in report["misclassified"][:10]:
        print(f"  misclassified: {item['path']} ({item['true_label']}, score "
              f"{item['score']:.3f})")
    out = Path(report["plots"][0]).parent
    print(f"report, predictions and plots in {out}")
    return 0


def _print_familiarity(fam: dict[str, Any] | None) -> None:
    """evaluate: how many recordings look unlike the training data."""
    if fam is None:
        print("familiarity: none (the model carries no familiarity statistics)")
    else:
        print(f"familiarity: {fam['unfamiliar']} of {fam['recordings']} recordings "
              f"unfamiliar ({fam['method']})")


def _print_classes(classes: dict[str, Any]) -> None:
    """Multi-class evaluation: per-recording class metrics, segment accuracy beside."""
    rec, seg = classes["recordings"], classes["segments"]
    print(f"class per recording ({classes['aggregate']} of segments): accuracy "
          f"{rec['accuracy']:.4f} on {rec['count']} recordings (segment-level: "
          f"{seg['accuracy']:.4f} on {seg['count']} segments)")
    print(f"{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'recordings':>12}")
    names = [k for k in rec["report"] if k not in ("accuracy", "macro avg", "weighted avg",
                                                    "micro avg")]
    for name in names:
        row = rec["report"][name]
        print(f"{name:<14}{row['precision']:>10.4f}{row['recall']:>10.4f}"
              f"{row['f1-score']:>10.4f}{int(row['support']):>12}")


# --- calibrate ------------------------------------------------------------------------------

def add_calibrate(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate", help="a new model file with a new decision rule (the source is kept)",
        description="Choose a decision rule for MODEL on a split of DATASET_DIR (default "
                    "VALIDATION) and write it, with the weights, into a NEW model file that "
                    "records its parent (SHA-256), the dataset, the split and the method. "
                    "MODEL is only read.")
    p.add_argument("model", metavar="MODEL", help="model file written by train or calibrate")
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder written by build")
    p.add_argument("--out", required=True, metavar="NEW_MODEL",
                   help="model file to write, never MODEL itself (default: none, "
                        "required)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing NEW_MODEL (default: refuse)")
    d = CalibrateConfig()
    option(p, ["--split"], "split", d, "split the threshold is chosen on",
           type=lambda v: SPLIT_ALIASES.get(v.lower(), v.upper()))
    _decision_options(p, d, "the parent model's", threshold="the F1-best on --split",
                      chosen_on="--split")
    device_flag(p, "calibrate")
    common(p)
    p.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from ..decisions.calibrate import calibrate, meta_path

    cfg = settings(CalibrateConfig, args)
    info = calibrate(args.model, args.dataset, args.out, cfg, overwrite=args.overwrite,
                     device=args.device)
    print(f"wrote {args.out} (and {meta_path(args.out)}): threshold {info['threshold']:.4f} "
          f"({info['threshold_method']}), recordings decided by {info['aggregate']}"
          + (f" (fraction {info['vote_fraction']:g})" if info["aggregate"] == "vote" else ""))
    print(f"parent {args.model} (sha256 {info['parent']['sha256']}) left unchanged")
    return 0


# --- predict --------------------------------------------------------------------------------

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
    p.add_argument("--allow-truncated", action="store_true",
                   help="judge the part that is there of a file holding less than its "
                        "header declares (status 'truncated', with a warning) instead of "
                        "leaving it unjudged (default: off)")
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
                        "--resume does; one that changes after it was judged is judged "
                        "again, its row replaced; Ctrl-C or SIGTERM stops (default: off)")
    g.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                   help="--watch: a file is complete when its size and time have not "
                        "changed for this long, or once renamed into place (default: 2)")
    g.add_argument("--poll", type=float, default=None, metavar="SECONDS",
                   help="--watch: look for new files this often instead of waiting for "
                        "file-system events, for network shares (default: events)")
    g.add_argument("--max-wait", type=float, default=600.0, metavar="SECONDS",
                   help="--watch: a file whose header declares more sound than it holds "
                        "is waited for while it grows and this long after its last change, "
                        "then judged as it is (status truncated) (default: 600)")
    log_flags(p, argparse.SUPPRESS)
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from ..decisions.predict import Predictor
    from ..decisions.predictions_file import (
        segments_path,
        write_predictions,
        write_predictions_info,
        write_timeline,
    )

    out = Path(args.out)
    fmt = args.format or ("json" if out.suffix.lower() == ".json" else "csv")
    incremental = args.resume or args.watch
    if incremental and (fmt != "csv" or args.segments):
        raise LeakhunterError("--resume and --watch append rows to a CSV file: give a .csv "
                              "--out, without --segments")
    if args.watch:  # before the model is read or the results file made
        from ..decisions.watch import check_timing

        check_timing(args.settle, args.poll, args.max_wait)
    check_predict_files(args)
    predictor = Predictor(args.model, onnx=args.onnx, threshold=args.threshold,
                          allow_truncated=args.allow_truncated,
                          vote_fraction=args.vote_fraction, aggregate=args.aggregate,
                          workers=args.workers, min_duration=args.min_duration,
                          class_aggregate=args.class_aggregate, device=args.device)
    if incremental:
        return _predict_incremental(args, predictor, out)
    records = list(predictor.predict(args.inputs, segments=args.segments))
    shift = predictor.flag_site_shift(records)
    write_predictions(records, out, fmt, predictor.classes)
    segments = segments_path(out) if args.segments else None
    if segments:
        write_timeline(records, segments)
    write_predictions_info(out, predictor, segments)
    judged = [r for r in records if r["decision"]]
    leaks = sum(r["decision"] == "LEAK" for r in judged)
    skipped = [r for r in records if not r["decision"]]
    d = predictor.rule
    print(f"{len(records)} recordings: {leaks} leak(s), {len(judged) - leaks} no leak, "
          f"{len(skipped)} not judged (threshold {d.threshold:.4f}, {d.aggregate}"
          + (f" {d.vote_fraction:g}" if d.aggregate == "vote" else "") + ")")
    for r in skipped[:10]:
        print(f"  not judged: {r['path']}: {r['status']}")
    _print_familiar_records(records, predictor.familiarity, shift)
    padded = sum(r["status"] == "padded" for r in records)
    if padded:
        print(f"  {padded} recording(s) shorter than one segment were padded (status padded)")
    print(f"decisions written to {out}")
    report_outputs(out, args.report, args.sensors, ReportConfig())
    return _strict_exit(args.strict, len(skipped))


def _predict_incremental(args: argparse.Namespace, predictor: Any, out: Path) -> int:
    """`predict --resume` / `--watch`: add the rows of recordings ``out`` lacks; the
    sensor decisions (``--sensors``) follow every batch, the report comes at the end."""
    from collections import Counter

    from ..decisions.predictions_file import predictions_info
    from ..decisions.results_log import ResultsLog
    from ..decisions.watch import judge_new, watch
    from ..recordings.files import find_recordings

    info = predictions_info(out, predictor)
    columns = info["identity"]["columns"]
    tally: Counter[str] = Counter()

    familiar: Counter[bool] = Counter()  # unfamiliar or not, of those with a figure

    def count(record: dict[str, Any]) -> None:
        tally[record["decision"] or f"not judged ({record['status']})"] += 1
        if record["familiarity"] is not None:
            familiar[record["status"] == "unfamiliar"] += 1

    def sensors(_: int) -> None:
        if args.sensors:
            report_outputs(out, None, args.sensors, ReportConfig())

    with ResultsLog(out, info) as results:
        try:
            if args.watch:
                watch(predictor, args.inputs, results, columns, args.settle, args.poll,
                      on_batch=sensors, max_wait_s=args.max_wait)
            else:
                judge_new(predictor, find_recordings(args.inputs), results, columns, count)
        except KeyboardInterrupt:
            print(f"leakhunter: {results.appended} recording(s) judged in this run are kept "
                  f"in {out}; run the same command to continue", file=sys.stderr)
            raise
    if args.watch:
        print(f"stopped watching: {results.appended} recording(s) judged in this run, "
              f"{results.rows} in {out}")
    else:
        print(f"{results.existing} recording(s) already in {out}, {results.appended} judged "
              f"now" + (": " + ", ".join(f"{n} {what}" for what, n in sorted(tally.items()))
                        if tally else ""))
    _warn_if_new_site(familiar[True], familiar[True] + familiar[False])
    sensors_now = None if args.watch else args.sensors  # --watch rewrote them per batch
    if args.report or sensors_now:
        report_outputs(out, args.report, sensors_now, ReportConfig())
    return _strict_exit(args.strict, sum(n for what, n in tally.items()
                                         if what.startswith("not judged")))


def _strict_exit(strict: bool, not_judged: int) -> int:
    """predict's exit code: 1, said on stderr, when ``--strict`` and a recording was not
    judged (the decisions are written all the same); else 0."""
    if strict and not_judged:
        print(f"leakhunter: error: --strict: {not_judged} recording(s) could not be judged "
              f"(see their status)", file=sys.stderr)
        return 1
    return 0


def _print_familiar_records(records: list[dict[str, Any]], stats: Any,
                            shift: dict[str, Any] | None) -> None:
    """predict: count and list the recordings flagged ``status=unfamiliar``."""
    if stats is None:
        return
    flagged = [r for r in records if r["status"] == "unfamiliar"]
    why = (f"these {shift['recordings']} recordings together lie farther from the training "
           f"data than its validation recordings (p = {shift['p']:.1e})"
           if shift and shift["shifted"] else
           f"familiarity below {stats['quantile']:g}")
    print(f"  {len(flagged)} unfamiliar (judged, but unlike the training data: {why})")
    for r in flagged[:10]:
        print(f"  unfamiliar: {r['path']} (familiarity {r['familiarity']:.3f}, "
              f"{r['decision']})")
    _warn_if_new_site(len(flagged), sum(r["familiarity"] is not None for r in records))


def _warn_if_new_site(unfamiliar: int, judged: int) -> None:
    """One warning per run when more than :data:`NEW_SITE_SHARE` of the recordings judged
    with a familiarity figure are unfamiliar: the site, not one sensor, differs."""
    if judged and unfamiliar > NEW_SITE_SHARE * judged:
        log.warning("%d of %d recordings (%.0f %%) are unfamiliar: they differ from the "
                    "model's training data as recordings of another site do, and its "
                    "decisions there may miss leaks; `leakhunter learn` adapts the model to "
                    "them (README: New sites)", unfamiliar, judged, 100 * unfamiliar / judged)


# --- shared by evaluate and calibrate -------------------------------------------------------

def _decision_options(p: argparse.ArgumentParser, d: Any, otherwise: str,
                      threshold: str | None = None, chosen_on: str = "VALIDATION") -> None:
    """--aggregate, --vote-fraction, --threshold | --target-specificity (evaluate,
    calibrate); ``otherwise`` says what "none" means, ``threshold`` what it means for the
    threshold when that differs, ``chosen_on`` the split a threshold is chosen on."""
    option(p, ["--aggregate"], "aggregate", d, "how segments decide a recording: vote "
                                               f"(a share of segments), mean or max; none = "
                                               f"{otherwise}",
           choices=["vote", "mean", "max"], type=str)
    option(p, ["--vote-fraction"], "vote_fraction", d, "share of segments that makes a "
                                                       f"recording a leak; none = {otherwise}",
           type=optional_float)
    g = p.add_mutually_exclusive_group()
    option(g, ["--threshold"], "threshold", d, "fixed segment threshold; none = " + (
        threshold or f"{otherwise} (re-chosen F1-best on {chosen_on} when the aggregation "
                     f"changes)"), type=optional_float)
    option(g, ["--target-specificity"], "target_specificity", d,
           f"choose the most sensitive threshold with this specificity on {chosen_on}",
           type=optional_float)
    option(p, ["--class-aggregate"], "class_aggregate", d, "multi-class: a recording's "
                                                           "class by segment vote or mean "
                                                           f"class probability; none = "
                                                           f"{otherwise}",
           choices=["vote", "mean"], type=str)
