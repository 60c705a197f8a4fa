"""The commands that make models: ``train`` (a model from a dataset), ``learn`` (the next
version of a model from a new site's recordings), ``tune`` (a hyperparameter study of train
runs). Each ``add_*`` builds the command's parser and sets the ``run_*`` after it as its
``func``; library imports happen inside the ``run_*`` so ``leakhunter --help`` stays fast."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

from ..config import AUGMENTS, POOLS, LearnConfig, TrainConfig, TuneConfig, load_toml, to_dict
from ..errors import LeakhunterError
from .flags import (
    CFG,
    TRAIN,
    common,
    device_flag,
    names,
    option,
    optional_float,
    optional_names,
    settings,
)

# --- train ----------------------------------------------------------------------------------

def add_train(sub: Any) -> None:
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
    option(p, ["--epochs"], "epochs", d, "maximum epochs")
    option(p, ["--batch-size"], "batch_size", d, "segments per batch (per process); "
                                                  "0 = 256 on CPU, up to 16384 on CUDA")
    option(p, ["--lr"], "lr", d, "peak learning rate (AdamW); 0 = 2e-3 scaled by "
                                 "sqrt(batch size / 256)")
    option(p, ["--weight-decay"], "weight_decay", d, "AdamW weight decay")
    option(p, ["--warmup-epochs"], "warmup_epochs", d, "linear warm-up, then cosine decay")
    option(p, ["--grad-clip"], "grad_clip", d, "maximum gradient norm; 0 = off")
    option(p, ["--loss"], "loss", d, "class-weighted cross-entropy or focal loss",
           choices=["ce", "focal"])
    option(p, ["--focal-gamma"], "focal_gamma", d, "focal loss exponent")
    option(p, ["--no-class-weights"], "class_weights", d,
           "do not weight the loss by inverse class frequency", action="store_false")
    option(p, ["--balanced-sampler"], "balanced_sampler", d,
           "draw class-balanced batches instead of weighting the loss", action="store_true")
    option(p, ["--augment"], "augment", d,
           f"site-robust augmentations of the log-mel, comma-separated from "
           f"{', '.join(AUGMENTS)}: another gain, background colour, pass band, noise "
           f"floor (README: New sites); none = off", type=optional_names)
    option(p, ["--spec-augment"], "spec_augment", d, "time and frequency masking",
           action="store_true")
    option(p, ["--mixup"], "mixup", d, "mixup alpha; 0 = off")
    option(p, ["--patience"], "patience", d, "epochs without better validation F1 before "
                                             "stopping")
    option(p, ["--time-budget"], "time_budget_s", d, "stop after this many seconds of "
                                                     "training (checked per epoch); 0 = none")
    option(p, ["--vote-fraction"], "vote_fraction", d, "share of segments that makes a "
                                                       "recording a leak")
    option(p, ["--target-specificity"], "target_specificity", d,
           "threshold written into best.pt: the most sensitive one with this specificity "
           "on VALIDATION; none = the F1-best", type=optional_float)
    option(p, ["--class-aggregate"], "class_aggregate", d,
           "multi-class rule written into best.pt: a recording's class by segment vote or "
           "mean class probability", choices=["vote", "mean"])
    option(p, ["--positive"], "positive", d, "comma-separated classes that count as a leak",
           type=names)
    option(p, ["--seed"], "seed", d, "random seed (weights, batch order, augmentation)")
    device_flag(p, "train", config=d)
    option(p, ["--amp"], "amp", d, "mixed precision: auto = bf16 where the GPU or CPU has "
                                   "native bf16, fp16 on older GPUs, else off",
           choices=["auto", "off", "bf16", "fp16"])
    option(p, ["--compile"], "compile", d, "torch.compile the model (compiling takes tens "
           "of seconds; in 20-epoch runs on one H200 it did not pay)", action="store_true")
    option(p, ["--preload"], "preload", d, "keep splits in memory: auto = when under 2 GiB",
           choices=["auto", "yes", "no"])
    option(p, ["--loader-workers"], "loader_workers", d,
           "processes reading batches from disk when not preloaded; 0 = in the trainer")
    option(p, ["--log-every"], "log_every", d, "steps between running-loss updates")
    g = p.add_argument_group("model")
    option(g, ["--width"], "model.width", d, "channels of the first conv block")
    option(g, ["--blocks"], "model.blocks", d, "conv blocks (width doubles each)")
    option(g, ["--dense"], "model.dense", d, "units of the dense layer")
    option(g, ["--dropout"], "model.dropout", d, "dropout rate")
    option(g, ["--pool"], "model.pool", d, "how the last conv map reaches the dense layer: "
           "avg+max = each channel's mean and maximum (where a pattern lies does not "
           "matter), flatten = the map as it is", choices=list(POOLS))
    option(g, ["--aux-weight"], "model.aux_weight", d,
           "multi-class: weight of the auxiliary leak-vs-rest loss")
    common(p)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
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


# --- learn ----------------------------------------------------------------------------------

def add_learn(sub: Any) -> None:
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
    option(p, ["--keep"], "keep", d, "share of each recording's segments selected: those "
                                     "agreeing most with its label")
    option(p, ["--confidence"], "confidence", d,
           "--unlabelled: a recording's own decision is used when at least this share of "
           "its segments agree with it")
    option(p, ["--no-adapt"], "adapt", d,
           "--unlabelled: judge the new recordings with the model as it is, not with its "
           "normalisation statistics re-estimated on them (AdaBN)", action="store_false")
    option(p, ["--rounds"], "rounds", d, "select -> fine-tune rounds")
    option(p, ["--replay-share"], "replay_share", d,
           "share of each round's training segments drawn from --replay's TRAINING")
    option(p, ["--epochs"], "epochs", d, "fine-tuning epochs per round")
    option(p, ["--lr"], "lr", d, "peak fine-tuning learning rate")
    option(p, ["--batch-size"], "batch_size", d, "segments per batch; 0 = automatic")
    option(p, ["--seed"], "seed", d, "random seed (replay sample, fine-tuning)")
    option(p, ["--group-by"], "split.group_by", d,
           "NEW_INPUT without split folders: keep each sensor's recordings in one split, "
           "or split per recording", choices=["sensor", "recording"])
    option(p, ["--workers"], "workers", d, "processes reading NEW_INPUT; 0 = one per core")
    device_flag(p, "learn", config=d)
    common(p)
    p.set_defaults(func=run_learn)


def run_learn(args: argparse.Namespace) -> int:
    from ..learn.rounds import learn

    if args.resume and (args.model or args.new_input or args.out):
        raise LeakhunterError("--resume RUN_DIR takes no MODEL, NEW_INPUT or --out: the run "
                              "says what it learns from")
    if not args.resume and not (args.model and args.new_input and args.out):
        raise LeakhunterError("learn needs MODEL NEW_INPUT --out RUN_DIR (or --resume "
                              "RUN_DIR)")
    # a resumed run keeps its settings: only where it runs and how many rounds may change
    fixed = sorted({"adapt": "--no-adapt"}.get(name, "--" + name.replace("_", "-"))
                   for name in (k.removeprefix(CFG).split(".")[-1] for k in vars(args)
                                if k.startswith(CFG))
                   if name not in ("device", "rounds"))
    if args.resume and (fixed or args.unlabelled or args.replay or args.truth):
        given = fixed + [f for f, on in (("--unlabelled", args.unlabelled),
                                         ("--replay", args.replay), ("--truth", args.truth)) if on]
        raise LeakhunterError(f"--resume continues the run with its own settings; only "
                              f"--rounds and --device may change, not {', '.join(given)}")
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
          f"{report['parent']['sha256'][:12]}..., unchanged); selected, false al(arms), "
          f"misses and replay count segments; figures per recording on TESTING")
    print(f"model: {report['best']}; report {Path(report['best']).parent}/learn_report.json, "
          f"plot {report['plot']}")
    return 0


# --- tune -----------------------------------------------------------------------------------

def add_tune(sub: Any) -> None:
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
                        "(default: none, required)")
    p.add_argument("--space", metavar="FILE.toml",
                   help="narrow or widen the search space (default: the built-in space)")
    p.add_argument("--restart", action="store_true",
                   help="delete the study and its outputs, saying what, then start over "
                        "(default: continue)")
    d = TuneConfig()
    option(p, ["--trials"], "trials", d, "trials this process runs")
    option(p, ["--timeout"], "timeout_s", d, "start no trial after this many seconds; "
                                             "0 = none")
    option(p, ["--epochs"], "epochs", d, "maximum epochs per trial")
    option(p, ["--time-budget"], "time_budget_s", d, "training seconds per trial (checked "
                                                     "per epoch); 0 = none")
    option(p, ["--study-name"], "study_name", d, "name of the study in the storage")
    option(p, ["--storage"], "storage", d, "database URL (sqlite:///..., postgresql://..., "
                                           "mysql://...); none = STUDY_DIR/study.db",
           type=str)
    option(p, ["--objective"], "objective", d, "f1: validation file F1 alone; f1,latency "
                                               "or f1,params: F1 against inference time "
                                               "per segment or against parameters",
           choices=["f1", "f1,latency", "f1,params"], metavar="{f1 | f1,latency | f1,params}")
    option(p, ["--target-specificity"], "target_specificity", d,
           "maximise validation sensitivity at this specificity instead of F1",
           type=optional_float)
    option(p, ["--sampler"], "sampler", d, "Optuna sampler", choices=["tpe", "nsga2",
                                                                      "random"])
    option(p, ["--startup-trials"], "startup_trials", d, "random trials before TPE models")
    option(p, ["--pruner"], "pruner", d, "how poor trials are stopped early",
           choices=["median", "hyperband", "none"])
    option(p, ["--pruner-startup-trials"], "pruner_startup_trials", d,
           "finished trials before the median pruner prunes")
    option(p, ["--pruner-warmup-epochs"], "pruner_warmup_epochs", d,
           "epochs a trial trains before it can be pruned (median pruner)")
    option(p, ["--seed"], "seed", d, "sampler seed")
    option(p, ["--keep-trials"], "keep_trials", d, "keep every trial's run directory, not "
                                                   "only the best", action="store_true")
    option(p, ["--no-baseline"], "baseline", d, "do not start a new study with a trial of "
                                                "the train defaults", action="store_false")
    g = p.add_argument_group("train settings (one given here, or in the [train] table of "
                             "--config, is fixed and not searched)")
    _copy_train_flags(sub.choices["train"], g)
    common(p)
    p.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    from ..tune.space import set_path
    try:
        from ..tune.outputs import values_text
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
    others = "".join(f", {summary[k]} {k}" for k in ("running", "queued") if summary[k])
    print(f"study {summary['study']!r}: {summary['trials']} trial(s), {summary['complete']} "
          f"complete, {summary['pruned']} pruned, {summary['failed']} failed{others}")
    for item in summary["pareto_front"] or summary["best"]:
        print(f"  trial {item['number']}: {values_text(item['values'])}  ({item['run_dir']})")
    if summary["files"]["best_config"]:
        print(f"best settings: {summary['files']['best_config']} (leakhunter train "
              f"--config accepts it)")
    print(f"trials: {summary['files']['trials']}; plots in {Path(args.out) / 'plots'}")
    return 0


def _copy_train_flags(train_parser: argparse.ArgumentParser, group: Any) -> None:
    """Add train's setting flags to tune, so any train setting can be fixed for a study.
    Their dests start with ``TRAIN``; the per-trial budgets, the seed and the target
    specificity (tune's objective, which the trials' thresholds follow) are tune's own."""
    from ..tune.space import SPACE

    searched = {p.path for p in SPACE}
    own = ("epochs", "time_budget_s", "seed", "target_specificity")
    for action in train_parser._actions:
        path = action.dest[len(CFG):]
        if not action.dest.startswith(CFG) or path in own:
            continue
        flag = copy.copy(action)
        flag.dest = TRAIN + path
        if path in searched:
            flag.help = action.help.rsplit(" (default:", 1)[0] + " (default: searched)"
        group._add_action(flag)


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"model": {"width": 8}}`` -> ``[("model.width", 8)]``."""
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out
