"""`leakhunter learn`: the next version of a model from new recordings of a site.

Per round: score every new segment with the current model (``--unlabelled``: with a copy
whose normalisation statistics are re-estimated on the new site, :mod:`.adapt`), select
by the paper's rule (:mod:`.selection`), write the round's training set (selected
segments plus a replayed share of the old training data, :mod:`.data`), fine-tune from
the current model with ``train.train`` (the same loop, exact resume, threshold chosen
when ``best.pt`` is written on the new site's VALIDATION, joined by the old site's with
``--replay``), then score the round's model on the new and the old TESTING splits
(:mod:`.report`).

RUN_DIR: ``learn.json`` (what was asked), ``data/`` (NEW_INPUT as a dataset),
``round-K/`` (a ``train`` run: ``best.pt``, ``checkpoints/last.pt``, ``metrics.csv``, ...;
its ``data/`` with ``selection.json``; ``round.json`` when the round is finished),
``best.pt`` (a copy of the last round's), ``learn_report.json`` and ``learn.png``. The
parent model is only read; its SHA-256 is checked again on resume.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..config import LearnConfig, TrainConfig, from_dict, to_dict
from ..dataset.segments import SplitData, load_split
from ..dataset.store import SPLIT_FILES
from ..errors import InputError
from ..model import checkpoint
from ..model.card import ModelCard, Rule, load_model, read_card
from ..model.scoring import predict_segments
from ..runtime import devices, locks, safe_write
from ..runtime.amp import autocast, resolve_amp
from ..runtime.safe_write import file_sha256, write_json
from ..training.train import train
from . import data as learn_data
from .adapt import adapted_copy
from .report import site_scores, write_report
from .selection import Selection, select

log = logging.getLogger(__name__)

STATE_FILE = "learn.json"
ROUND_FILE = "round.json"
OWNED = ("data", "unlabelled.csv", "best.pt", "learn_report.json", "learn.png", STATE_FILE)


@locks.writes_folder("run_dir", "learn")
def learn(model: str | Path | None, new_input: str | Path | None, run_dir: str | Path,
          cfg: LearnConfig = LearnConfig(), *, unlabelled: bool = False,
          replay: str | Path | None = None, truth: str | Path | None = None,
          resume: bool = False, overwrite: bool = False,
          device: str | None = None, more_rounds: int | None = None) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) a learn run in ``run_dir``; returns the report.

    ``replay``: the parent's dataset folder (its TRAINING is replayed, its TESTING is the
    forgetting check). ``truth``: a labelled dataset of the new site whose TESTING is
    reported (unlabelled runs). On resume, ``device`` replaces the stored one and
    ``more_rounds`` the number of rounds (finished rounds are kept: a run can be
    extended). Raises
    :class:`InputError` (and the errors of build, train and checkpoint loading) with one
    clear reason; the parent model is never written.
    """
    run = Path(run_dir)
    if resume:
        state = _read_state(run)
        changed = {**({"device": device} if device else {}),
                   **({"rounds": more_rounds} if more_rounds else {})}
        cfg = from_dict(LearnConfig, {**state["config"], **changed})
        if changed:
            state = {**state, "config": to_dict(cfg)}
            write_json(run / STATE_FILE, state)
    else:
        if model is None or new_input is None:
            raise InputError("learn needs MODEL, NEW_INPUT and --out RUN_DIR (or --resume "
                             "RUN_DIR)")
        state = _start(Path(model), Path(new_input), run, cfg, unlabelled, replay, truth,
                       overwrite)
    return _Run(run, cfg, state).go()


def _start(model: Path, new_input: Path, run: Path, cfg: LearnConfig, unlabelled: bool,
           replay: str | Path | None, truth: str | Path | None,
           overwrite: bool) -> dict[str, Any]:
    if not cfg.adapt and not unlabelled:
        raise InputError("--no-adapt is for --unlabelled runs: a labelled NEW_INPUT is "
                         "always judged with the model as it is")
    card = read_card(model)  # a bad model fails before anything is written
    if not new_input.exists():
        raise InputError(f"{new_input}: input not found")
    for extra, what in ((replay, "--replay"), (truth, "--truth")):
        if extra is not None and not (Path(extra) / SPLIT_FILES["TESTING"]).exists():
            raise InputError(f"{what} {extra}: not a dataset folder written by build")
    if truth is not None and not unlabelled:
        raise InputError("--truth is for --unlabelled runs; a labelled NEW_INPUT is "
                         "reported on its own TESTING split")
    inside = model.resolve().is_relative_to(run.resolve())
    if run.exists() and any(p.name != locks.LOCK_FILE for p in run.iterdir()):
        if inside:
            raise InputError(f"{run}: holds the parent model {model}; choose another --out")
        if (run / STATE_FILE).exists() and not any(run.glob(f"round-*/{ROUND_FILE}")):
            # a run that failed before its first round holds nothing worth resuming (its
            # data is rebuilt): the same command, its fault fixed, starts it again
            log.info("%s: a learn run that stopped before its first round: starting again",
                     run)
            overwrite = True
        if not overwrite:
            raise InputError(f"{run}: not empty; use --resume {run} to continue a learn run, "
                             f"--overwrite to replace one, or another --out")
        if not (run / STATE_FILE).exists():
            raise InputError(f"{run}: not a learn run; --overwrite only replaces one")
        for name in OWNED:
            target = run / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        for old in run.glob("round-*"):
            shutil.rmtree(old)
    run.mkdir(parents=True, exist_ok=True)
    state = {"model": str(model.resolve()), "sha256": file_sha256(model),
             "new_input": str(new_input.resolve()), "unlabelled": unlabelled,
             "replay": str(Path(replay).resolve()) if replay else None,
             "truth": str(Path(truth).resolve()) if truth else None,
             "config": to_dict(cfg), "class_names": list(card.classes),
             "leakhunter_version": __version__}
    write_json(run / STATE_FILE, state)
    return state


def _read_state(run: Path) -> dict[str, Any]:
    path = run / STATE_FILE
    if not path.is_file():
        raise InputError(f"{run}: no learn run to resume ({STATE_FILE} missing)")
    state = json.loads(path.read_text(encoding="utf-8"))
    if file_sha256(state["model"]) != state["sha256"]:
        raise InputError(f"{state['model']}: the parent model changed since the run began "
                         f"(SHA-256 differs); start a new run")
    return state


class _Run:
    """One learn run: its datasets, its rounds and their report."""

    def __init__(self, run: Path, cfg: LearnConfig, state: dict[str, Any]):
        self.run, self.cfg, self.state = run, cfg, state
        self.choice = devices.resolve(cfg.device, "learn")
        self.device = self.choice.device
        self.amp = autocast(resolve_amp("auto", self.device), self.device)
        self.parent = Path(state["model"])
        self.card = read_card(self.parent)
        self.classes: list[str] = list(self.card.classes)
        self.positive = tuple(self.card.positive_indices)

    # --- data -------------------------------------------------------------------------------

    def _datasets(self) -> None:
        st, cfg = self.state, self.cfg
        build_cfg = learn_data.build_config_for(self.card, cfg.split, cfg.workers,
                                                 "cpu" if self.device.type == "cpu"
                                                 else cfg.device)
        self.build = learn_data.build_new_site(st["new_input"], self.run / "data", build_cfg,
                                               self.classes, st["unlabelled"])
        splits = {s: load_split(self.run / "data" / SPLIT_FILES[s]) for s in SPLIT_FILES}
        if not st["unlabelled"]:
            for s in splits.values():
                self.card.fits(s, "NEW_INPUT")
        self.new = splits
        self.new_test = splits["TESTING"] if not st["unlabelled"] else (
            self.card.fits(load_split(Path(st["truth"]) / SPLIT_FILES["TESTING"]),
                           "--truth") if st["truth"] else None)
        self.old_train = self.old_val = self.old_test = None
        if st["replay"]:
            self.old_train, self.old_val, self.old_test = (
                self.card.fits(load_split(Path(st["replay"]) / SPLIT_FILES[s]), "--replay")
                for s in ("TRAINING", "VALIDATION", "TESTING"))

    # --- rounds -----------------------------------------------------------------------------

    def go(self) -> dict[str, Any]:
        self._datasets()
        log.info("learn: %s -> %s (%s%s), %d round(s), on %s", self.parent, self.run,
                 "unlabelled" if self.state["unlabelled"] else "labelled",
                 ", replaying " + self.state["replay"] if self.state["replay"] else "",
                 self.cfg.rounds, self.choice.describe())
        report = {"parent": {"model": str(self.parent), "sha256": self.state["sha256"],
                             "new_test": site_scores(self.parent, self.new_test, self.device,
                                                     self.amp),
                             "old_test": site_scores(self.parent, self.old_test, self.device,
                                                     self.amp)},
                  "settings": self.state, "rounds": []}
        current = self.parent
        for r in range(1, self.cfg.rounds + 1):
            report["rounds"].append(self._round(r, current))
            current = self.run / f"round-{r}" / "best.pt"
            write_report(self.run, report)
        safe_write.copy_file(current, self.run / "best.pt", "copying the last round's model")
        report["best"] = str(self.run / "best.pt")
        report["plot"] = str(write_report(self.run, report))
        return report

    def _round(self, r: int, current: Path) -> dict[str, Any]:
        rdir = self.run / f"round-{r}"
        if (rdir / ROUND_FILE).exists():
            log.info("round %d: finished earlier, kept", r)
            return json.loads((rdir / ROUND_FILE).read_text(encoding="utf-8"))
        rdata = rdir / "data"
        if not (rdata / learn_data.SELECTION_FILE).exists():
            self._select_and_write(r, current, rdata)
        selection = json.loads((rdata / learn_data.SELECTION_FILE).read_text(encoding="utf-8"))
        parent_state = checkpoint.load(current, "model")  # the weights fine-tuning starts from
        lineage = {"command": "learn", "round": r, "path": str(current.resolve()),
                   "sha256": file_sha256(current), "origin": self.state["model"],
                   "origin_sha256": self.state["sha256"], "data": selection,
                   "parent": ModelCard.from_meta(parent_state, current).meta.get("parent")}
        tcfg = self._train_config()
        if (rdir / "checkpoints" / "last.pt").exists():
            summary = train(None, rdir, tcfg, resume=True, overrides={"device": tcfg.device},
                            lineage=lineage)
        else:
            summary = train(rdata, rdir, tcfg, overwrite=True,
                            init_state=parent_state["model"], lineage=lineage)
        model = rdir / "best.pt"
        result = {"round": r, "model": str(model), "sha256": file_sha256(model),
                  "parent_sha256": lineage["sha256"], "selection": selection["counts"],
                  "replay_segments": selection["replay_segments"],
                  "best_epoch": summary["best"]["epoch"],
                  "validation_f1": summary["best"]["file_f1"],
                  "new_test": site_scores(model, self.new_test, self.device, self.amp),
                  "old_test": site_scores(model, self.old_test, self.device, self.amp)}
        write_json(rdir / ROUND_FILE, result)
        _log_round(result)
        return result

    def _select_and_write(self, r: int, current: Path, out: Path) -> None:
        model, card = load_model(current, self.device)
        rule = card.rule
        unlabelled, cfg = self.state["unlabelled"], self.cfg
        # pseudo-labels from the model on the new site's own scale (adapt.py); labelled
        # selection ranks segments against the true label with the model as it is
        adapted = unlabelled and cfg.adapt
        judge = adapted_copy(model, self.new["TRAINING"], self.device) if adapted else model
        sel_train = self._select(judge, self.new["TRAINING"], rule, cfg.keep)
        # validation: every segment of the recordings whose class is known (or trusted)
        sel_val = self._select(judge, self.new["VALIDATION"], rule, 1.0)
        if unlabelled and sel_train.counts["recordings_used"] == 0:
            raise InputError(f"no TRAINING recording of {self.state['new_input']} reached "
                             f"--confidence {cfg.confidence:g} (confidences "
                             f"{_spread(sel_train.confidence)}); nothing to learn from")
        val_classes = set(np.unique(sel_val.recording_label[sel_val.recording_label >= 0]))
        # With --replay the old site's VALIDATION joins the new site's: the round's best
        # epoch and threshold must serve both sites (chosen on the new site alone, round 2
        # of the README's run lost 0.07 of old-site F1 to false alarms there). It also gives
        # pseudo-labels that cover one class (a model calling the new site quiet) leaks and
        # no leaks with true labels to set a threshold on.
        old_val = self.old_val is not None
        if len(val_classes) < 2 and not old_val:
            raise InputError(f"round {r}: the new site's VALIDATION recordings "
                             f"{'that reached --confidence ' if unlabelled else ''}cover "
                             f"{len(val_classes)} class(es); a threshold needs both leaks "
                             f"and no leaks there"
                             + ("; give --replay so the old site's VALIDATION can join them"
                                if unlabelled else ""))
        replay = np.zeros(0, np.int64)
        if self.old_train is not None:
            replay = learn_data.replay_sample(self.old_train, sel_train.segments.size,
                                              cfg.replay_share, cfg.seed, r)
        parts = {"TRAINING": [(self.new["TRAINING"], sel_train.segments, sel_train.label)],
                 "VALIDATION": [(self.new["VALIDATION"], sel_val.segments, sel_val.label)]}
        if replay.size:
            parts["TRAINING"].append((self.old_train, replay, self.old_train.label[replay]))
        if old_val:
            every = np.arange(self.old_val.segments)
            parts["VALIDATION"].append((self.old_val, every, self.old_val.label))
        selection = {"round": r, "model": str(current), "mode": "unlabelled" if unlabelled
                     else "labelled", "new_site": str(self.run / "data"),
                     "judged_with": "normalisation re-estimated on the new site's TRAINING"
                                    if adapted else "the model as it is",
                     "counts": sel_train.counts, "validation_counts": sel_val.counts,
                     "validation": "new site's and old site's VALIDATION" if old_val
                                   else "new site's VALIDATION",
                     "replay": self.state["replay"], "replay_segments": int(replay.size),
                     "settings": to_dict(cfg)}
        learn_data.write_round_data(out, self.classes, self.new["TRAINING"].feature,
                                    self.new["TRAINING"].audio, parts, selection)
        c = sel_train.counts
        log.info("round %d: selected %d of %d new segments from %d recordings%s; %d replayed",
                 r, c["segments_selected"], c["segments_scored"], c["recordings_used"],
                 f" ({c['segments_from_false_alarms']} from {c['false_alarms']} false alarms,"
                 f" {c['segments_from_misses']} from {c['misses']} misses)"
                 if "misses" in c else f" ({c['below_confidence']} below the confidence)",
                 replay.size)

    def _select(self, model: Any, data: SplitData, rule: Rule, keep: float) -> Selection:
        prob, logits = predict_segments(model, data, self.device, autocast=self.amp)
        class_prob = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        truth = None if self.state["unlabelled"] else data.file_label
        return select(prob, class_prob, data.file_index, truth, rule, self.positive, keep,
                      self.cfg.confidence)

    def _train_config(self) -> TrainConfig:
        """Fine-tuning settings: the parent's architecture and decision settings, this
        run's epochs, rate and seed; no early stop inside a round."""
        card, cfg = self.card, self.cfg
        source = {} if card.threshold_source is None else card.threshold_source
        return TrainConfig(
            model=card.model_config, positive=card.positive, epochs=cfg.epochs, lr=cfg.lr,
            batch_size=cfg.batch_size, warmup_epochs=0.0, patience=cfg.epochs,
            vote_fraction=card.rule.vote_fraction,
            target_specificity=source.get("target_specificity"),
            class_aggregate=card.rule.class_aggregate, seed=cfg.seed, device=cfg.device)


def _spread(values: np.ndarray) -> str:
    return f"{values.min():.2f} to {values.max():.2f}" if values.size else "none"


def _log_round(result: dict[str, Any]) -> None:
    for key, name in (("new_test", "new site"), ("old_test", "old site")):
        m = result[key]
        if m:
            log.info("round %d, %s TESTING: accuracy %.4f, F1 %.4f, specificity %.4f, "
                     "sensitivity %.4f", result["round"], name, m["accuracy"], m["f1"],
                     m["specificity"], m["sensitivity"])
