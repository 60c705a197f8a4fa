"""What each ``leakhunter`` subcommand does: build its settings, call the library, print.

The parsers live in :mod:`leakhunter.cli`; library imports happen inside each command so
``leakhunter --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..config import (
    MULTICLASS_LABELS,
    BuildConfig,
    CalibrateConfig,
    DemoConfig,
    EvalConfig,
    LearnConfig,
    ReportConfig,
    SynthConfig,
    TrainConfig,
    TuneConfig,
    from_dict,
    load_toml,
    to_dict,
)
from ..errors import LeakhunterError

CFG = "cfg:"  # prefix of argparse dests that override a config field (dotted path)
TRAIN = "train:"  # tune: prefix of the dests of train settings fixed on the command line


def settings(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """Dataclass ``cls`` from defaults, then ``--config`` TOML, then explicit flags."""
    data: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        data.update(load_toml(args.config))
    for dest, value in vars(args).items():
        if dest.startswith(CFG):
            node = data
            *parents, leaf = dest[len(CFG):].split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return from_dict(cls, data)


# --- commands -------------------------------------------------------------------------------

def cmd_synth(args: argparse.Namespace) -> int:
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


def cmd_build(args: argparse.Namespace) -> int:
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
    for item in report["skipped"][:10]:
        print(f"  skipped {item['path']}: {item['reason']}")
    if len(report["skipped"]) > 10:
        print(f"  ... and {len(report['skipped']) - 10} more (see build_report.json)")
    print(f"dataset written to {args.out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
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


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.train import train

    if args.resume and (args.dataset or args.out):
        raise LeakhunterError("--resume RUN_DIR takes no DATASET_DIR or --out: the run's "
                              "checkpoint says what it trains on")
    if not args.resume and not (args.dataset and args.out):
        raise LeakhunterError("train needs DATASET_DIR and --out RUN_DIR (or --resume RUN_DIR)")
    overrides = {dest[len(CFG):]: value for dest, value in vars(args).items()
                 if dest.startswith(CFG)}
    cfg = settings(TrainConfig, args)
    summary = train(args.dataset, args.resume or args.out, cfg, resume=bool(args.resume),
                    overwrite=args.overwrite, overrides=overrides)
    best = summary["best"]
    print(f"trained {summary['epochs']} epoch(s), stopped by {summary['stopped']}; best "
          f"validation file-level leak F1 {best['file_f1']:.4f} at epoch {best['epoch']}")
    if best.get("threshold") is not None:
        print(f"threshold {best['threshold']:.4f} ({best['threshold_method']}), in best.pt")
    print(f"model: {summary['run_dir']}/best.pt")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
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


def cmd_predict(args: argparse.Namespace) -> int:
    from ..decisions.predict import Predictor
    from ..decisions.predictions_file import (
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
    predictor = Predictor(args.model, onnx=args.onnx, threshold=args.threshold,
                          vote_fraction=args.vote_fraction, aggregate=args.aggregate,
                          workers=args.workers, min_duration=args.min_duration,
                          class_aggregate=args.class_aggregate, device=args.device)
    if incremental:
        return _predict_incremental(args, predictor, out)
    records = list(predictor.predict(args.inputs, segments=args.segments))
    write_predictions(records, out, fmt, predictor.classes)
    segments = out.with_name(out.stem + "_segments.csv") if args.segments else None
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
    _print_familiar_records(records, predictor.familiarity)
    padded = sum(r["status"] == "padded" for r in records)
    if padded:
        print(f"  {padded} recording(s) shorter than one segment were padded (status padded)")
    print(f"decisions written to {out}")
    _report_outputs(out, args.report, args.sensors, ReportConfig())
    return 1 if args.strict and skipped else 0


def _predict_incremental(args: argparse.Namespace, predictor: Any, out: Path) -> int:
    """`predict --resume` / `--watch`: add the rows of recordings ``out`` lacks; the
    sensor decisions (``--sensors``) follow every batch, the report comes at the end."""
    from collections import Counter

    from ..decisions.predict import find_recordings
    from ..decisions.predictions_file import predictions_info
    from ..decisions.results_log import ResultsLog
    from ..decisions.watch import judge_new, watch

    info = predictions_info(out, predictor)
    columns = info["identity"]["columns"]
    tally: Counter[str] = Counter()

    def count(record: dict[str, Any]) -> None:
        tally[record["decision"] or f"not judged ({record['status']})"] += 1

    def sensors(_: int) -> None:
        if args.sensors:
            _report_outputs(out, None, args.sensors, ReportConfig())

    with ResultsLog(out, info) as results:
        try:
            if args.watch:
                watch(predictor, args.inputs, results, columns, args.settle, args.poll,
                      on_batch=sensors)
            else:
                judge_new(predictor, find_recordings(args.inputs), results, columns, count)
        except KeyboardInterrupt:
            print(f"leakhunter: {results.appended} recording(s) judged in this run are kept "
                  f"in {out}; run the same command to continue", file=sys.stderr)
            raise
    if args.watch:
        print(f"stopped watching: {results.appended} recording(s) judged in this run, "
              f"{results.existing + results.appended} in {out}")
    else:
        print(f"{results.existing} recording(s) already in {out}, {results.appended} judged "
              f"now" + (": " + ", ".join(f"{n} {what}" for what, n in sorted(tally.items()))
                        if tally else ""))
    sensors_now = None if args.watch else args.sensors  # --watch rewrote them per batch
    if args.report or sensors_now:
        _report_outputs(out, args.report, sensors_now, ReportConfig())
    return 1 if args.strict and any(k.startswith("not judged") for k in tally) else 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..model.export import export_onnx

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


def cmd_report(args: argparse.Namespace) -> int:
    cfg = settings(ReportConfig, args)
    _report_outputs(Path(args.predictions), args.out, args.sensors, cfg, model=args.model)
    return 0


def _report_outputs(predictions: Path, report: str | None, sensors: str | None,
                    cfg: ReportConfig, model: str | None = None) -> None:
    """The survey report and/or sensors.csv of the ``predictions`` file, and what they
    hold. Both read the file, so ``predict --sensors`` and ``report --sensors`` agree."""
    from ..report import build_report, sensor_view, write_sensors_csv
    from ..report.load import load_survey

    if sensors:
        view = sensor_view(load_survey(predictions).rows, cfg)
        write_sensors_csv(view, sensors)
        alerting = sum(a["alert"] for a in view.alerts)
        print(f"sensor decisions written to {sensors}: {len(view.alerts)} sensor(s), "
              f"{alerting} alerting ({cfg.min_leak_nights} of the last {cfg.nights} nights)"
              + (f"; {view.note}" if view.note else ""))
    if report:
        s = build_report(predictions, report, cfg, model=model)
        print(f"report written to {s['out']} ({s['bytes'] / 1e6:.2f} MB): "
              f"{s['recordings']} recordings, {s['leaks']} called leaks, {s['not_judged']} "
              f"not judged; audio for {s['audio']} ({s['audio_bytes'] / 1e6:.2f} MB), "
              f"spectrograms for {s['spectrograms']}")
        if s["audio_capped"]:
            print(f"  audio size cap ({cfg.audio_cap_mb:g} MB) reached: {s['audio_capped']} "
                  f"recording(s) without audio")
        if s["missing_audio"]:
            print(f"  {s['missing_audio']} recording file(s) missing or unreadable: shown "
                  f"without audio or spectrogram")
        if s["sensor_note"]:
            print(f"  sensors: {s['sensor_note']}")


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    summary = run_demo(args.out, settings(DemoConfig, args), keep=args.keep,
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


def cmd_tune(args: argparse.Namespace) -> int:
    from ..tune.space import set_path
    try:
        from ..tune.study import run_study
    except ImportError as exc:  # optuna is a dependency, but may be missing from a venv
        raise LeakhunterError(f"leakhunter tune needs optuna ({exc}); pip install optuna") \
            from None

    raw = load_toml(args.config) if args.config else {}
    table = raw.pop("train", {})
    if not isinstance(table, dict):
        raise LeakhunterError(f"{args.config}: [train] must be a table of train settings")
    cfg = settings(TuneConfig, argparse.Namespace(**{**vars(args), "config": None}), raw)
    # trials train with the tune budgets unless [train] or a flag fixes them
    tree = {**to_dict(TrainConfig()), "epochs": cfg.epochs, "time_budget_s": cfg.time_budget_s}
    fixed = set()
    for path, value in [*_flatten(table), *((dest[len(TRAIN):], value) for dest, value
                                            in vars(args).items() if dest.startswith(TRAIN))]:
        set_path(tree, path, list(value) if isinstance(value, tuple) else value)
        fixed.add(path)
    summary = run_study(args.dataset, args.out, cfg, tree, fixed, space_file=args.space,
                        restart=args.restart)
    print(f"study {summary['study']!r}: {summary['trials']} trial(s), {summary['complete']} "
          f"complete, {summary['pruned']} pruned, {summary['failed']} failed")
    for item in summary["pareto_front"] or summary["best"]:
        print(f"  trial {item['number']}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in item["values"].items()) + f"  ({item['run_dir']})")
    if summary["files"]["best_config"]:
        print(f"best settings: {summary['files']['best_config']} (leakhunter train "
              f"--config accepts it)")
    print(f"trials: {summary['files']['trials']}; plots in {Path(args.out) / 'plots'}")
    return 0


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"model": {"width": 8}}`` -> ``[("model.width", 8)]``."""
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _print_splits(splits: dict[str, Any], labels: list[str]) -> None:
    head = (f"{'split':<11}{'recordings':>11}{'segments':>10}{'sensors':>8}{'padded':>8}  "
            f"per class (recordings)")
    print(head)
    for name, sp in splits.items():
        sensors = sp["sensors"] if isinstance(sp["sensors"], int) else len(sp["sensors"])
        per = "  ".join(f"{lab}={sp['recordings_per_class'].get(lab, 0)}" for lab in labels)
        print(f"{name:<11}{sp['recordings']:>11}{sp['segments']:>10}{sensors:>8}"
              f"{sp.get('padded', 0):>8}  {per}")


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..decisions.calibrate import calibrate, meta_path

    cfg = settings(CalibrateConfig, args)
    info = calibrate(args.model, args.dataset, args.out, cfg, overwrite=args.overwrite,
                     device=args.device)
    print(f"wrote {args.out} (and {meta_path(args.out)}): threshold {info['threshold']:.4f} "
          f"({info['threshold_method']}), recordings decided by {info['aggregate']}"
          + (f" (fraction {info['vote_fraction']:g})" if info["aggregate"] == "vote" else ""))
    print(f"parent {args.model} (sha256 {info['parent']['sha256']}) left unchanged")
    return 0


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


def _print_familiarity(fam: dict[str, Any] | None) -> None:
    """evaluate: how many recordings look unlike the training data."""
    if fam is None:
        print("familiarity: none (the model carries no familiarity statistics)")
    else:
        print(f"familiarity: {fam['unfamiliar']} of {fam['recordings']} recordings "
              f"unfamiliar ({fam['method']})")


def _print_familiar_records(records: list[dict[str, Any]], stats: Any) -> None:
    """predict: count and list the recordings flagged ``status=unfamiliar``."""
    if stats is None:
        return
    flagged = [r for r in records if r["status"] == "unfamiliar"]
    print(f"  {len(flagged)} unfamiliar (judged, but unlike the training data: familiarity "
          f"below {stats['quantile']:g})")
    for r in flagged[:10]:
        print(f"  unfamiliar: {r['path']} (familiarity {r['familiarity']:.3f}, "
              f"{r['decision']})")


def cmd_learn(args: argparse.Namespace) -> int:
    from ..learn.rounds import learn

    if args.resume and (args.model or args.new_input or args.out):
        raise LeakhunterError("--resume RUN_DIR takes no MODEL, NEW_INPUT or --out: the run "
                              "says what it learns from")
    if not args.resume and not (args.model and args.new_input and args.out):
        raise LeakhunterError("learn needs MODEL NEW_INPUT --out RUN_DIR (or --resume "
                              "RUN_DIR)")
    cfg = settings(LearnConfig, args)
    report = learn(args.model, args.new_input, args.resume or args.out, cfg,
                   unlabelled=args.unlabelled, replay=args.replay, truth=args.truth,
                   resume=bool(args.resume), overwrite=args.overwrite,
                   device=getattr(args, CFG + "device", None),
                   more_rounds=getattr(args, CFG + "rounds", None))
    print(f"{'round':<7}{'selected':>9}{'false al.':>10}{'misses':>8}{'replay':>8}"
          f"{'new F1':>9}{'new spec':>9}{'new sens':>9}{'old F1':>9}{'old spec':>9}")
    rows = [{"round": 0, "selection": {}, "replay_segments": None, **report["parent"]},
            *report["rounds"]]
    for row in rows:
        c = row["selection"]
        cells = [c.get("segments_selected"), c.get("segments_from_false_alarms"),
                 c.get("segments_from_misses"), row["replay_segments"]]
        figures = [(row.get(k) or {}).get(m) for k in ("new_test", "old_test")
                   for m in (("f1", "specificity", "sensitivity") if k == "new_test"
                             else ("f1", "specificity"))]
        print(f"{row['round']:<7}" + "".join(f"{'-' if v is None else v:>{w}}" for v, w in
                                              zip(cells, (9, 10, 8, 8)))
              + "".join(f"{'-':>9}" if v is None else f"{v:>9.4f}" for v in figures))
    print(f"round 0 is the parent {report['parent']['model']} (sha256 "
          f"{report['parent']['sha256'][:12]}..., unchanged); figures per recording on "
          f"TESTING")
    print(f"model: {report['best']}; report {Path(report['best']).parent}/learn_report.json, "
          f"plot {report['plot']}")
    return 0
