"""The parsers of the commands that make and judge models: ``train``, ``evaluate``,
``calibrate``, ``learn``, ``tune``."""

from __future__ import annotations

import argparse
import copy
from typing import Any

from ..config import CalibrateConfig, EvalConfig, LearnConfig, TrainConfig, TuneConfig
from ..dataset.sources import SPLIT_ALIASES
from . import commands
from .commands import CFG, TRAIN
from .flags import common, decision_options, device_flag, device_help, names, option, optional_float


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
    option(p, ["--device"], "device", d, device_help("train"))
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
    option(g, ["--aux-weight"], "model.aux_weight", d,
           "multi-class: weight of the auxiliary leak-vs-rest loss")
    common(p)
    p.set_defaults(func=commands.cmd_train)


def add_evaluate(sub: Any) -> None:
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
    option(p, ["--split"], "split", d, "split to evaluate",
           type=lambda v: SPLIT_ALIASES.get(v.lower(), v.upper()))
    decision_options(p, d, "the model's")
    option(p, ["--segments"], "segments", d, "also write segments.csv", action="store_true")
    option(p, ["--svg"], "svg", d, "also write the plots as SVG", action="store_true")
    p.add_argument("--out", metavar="DIR", help="output folder (default: "
                                                "MODEL's folder/eval-<split>)")
    device_flag(p, "evaluate")
    common(p)
    p.set_defaults(func=commands.cmd_evaluate)


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
                   help="model file to write (required; never MODEL itself)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing NEW_MODEL (default: refuse)")
    d = CalibrateConfig()
    option(p, ["--split"], "split", d, "split the threshold is chosen on",
           type=lambda v: SPLIT_ALIASES.get(v.lower(), v.upper()))
    decision_options(p, d, "the parent model's")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N "
                                                    "(default: auto)")
    common(p)
    p.set_defaults(func=commands.cmd_calibrate)


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
    option(p, ["--workers"], "workers", d, "processes reading NEW_INPUT; 0 = one per core")
    option(p, ["--device"], "device", d, device_help("learn"))
    common(p)
    p.set_defaults(func=commands.cmd_learn)


def _copy_train_flags(train: argparse.ArgumentParser, group: Any) -> None:
    """Add train's setting flags to tune, so any train setting can be fixed for a study.
    Their dests start with ``TRAIN``; the per-trial budgets, the seed and the target
    specificity (tune's objective, which the trials' thresholds follow) are tune's own."""
    from ..tune.space import SPACE

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
                        "(required)")
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
    option(p, ["--objective"], "objective", d, "validation file F1 alone, or against "
                                               "inference time per segment or parameters",
           choices=["f1", "f1,latency", "f1,params"])
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
    p.set_defaults(func=commands.cmd_tune)
