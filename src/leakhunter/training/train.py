"""`leakhunter train`: a new run, a resumed run or a fine-tuning run, and DDP under
torchrun. The loop itself is :class:`.trainer.Trainer`; this module decides what it starts
from: a fresh folder, or ``checkpoints/last.pt`` with the settings it was written with
(:data:`RESUMABLE` may change), and the splits, checked against those settings.

Run directory: ``config.json``, ``train.log``, ``metrics.csv`` (a row per epoch),
``checkpoints/last.pt`` (the full state, after every epoch and on Ctrl-C/SIGTERM),
``best.pt`` (the model with the best validation file-level F1) and ``model_meta.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import TrainConfig, from_dict, to_dict
from ..dataset.segments import SplitData, load_split
from ..dataset.store import SPLIT_FILES
from ..errors import DatasetError, InputError
from ..model import checkpoint
from ..runtime.locks import writes_folder
from ..runtime.log import add_log_file, remove_log_file
from . import batches, distributed, run_folder
from .trainer import Trainer

log = logging.getLogger(__name__)

# may differ on resume: they change how long or where the run goes, not what it computes
RESUMABLE = {"epochs", "patience", "time_budget_s", "device", "log_every", "preload",
             "loader_workers", "compile"}


@writes_folder(run_folder.folder_to_lock, "train")
def train(dataset_dir: str | Path | None, run_dir: str | Path, config: TrainConfig,
          resume: bool = False, overwrite: bool = False,
          overrides: dict[str, Any] | None = None, init_state: dict[str, Any] | None = None,
          lineage: dict[str, Any] | None = None,
          on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a run in ``run_dir``; returns its summary.

    Fine-tuning (``learn``): ``init_state``, a model state dict of the same architecture,
    replaces the random initial weights and keeps that model's input normalisation;
    ``lineage`` is written into ``best.pt`` as ``parent`` (where the model comes from).

    ``overrides``: the settings given explicitly for a resumed run; any outside
    :data:`RESUMABLE` that differs from the run's is refused. Raises :class:`InputError`,
    :class:`DatasetError` or :class:`checkpoint.CheckpointError` with one clear reason.
    ``on_epoch(epoch, row)``: called after each epoch's validation, once ``best.pt``,
    ``metrics.csv`` and ``checkpoints/last.pt`` are written (so the run directory is
    consistent), with the epoch's ``metrics.csv`` row; under torchrun every process gets
    the same ``val_file_f1`` and ``val_loss`` (the other validation figures are rank 0's
    only). An exception it raises ends the run and propagates (tune's pruning).
    """
    run = Path(run_dir)
    ctx = distributed.from_environment()
    state = None
    if resume:
        state = checkpoint.load(run / "checkpoints" / "last.pt", "train-state")
        config = _resumed_config(state, overrides or {})
        dataset_dir = state["dataset_dir"]
    elif dataset_dir is None:
        raise InputError("give a DATASET_DIR to train on, or --resume RUN_DIR")
    choice = distributed.device_for(ctx, config.device)  # before anything is written
    if not resume:
        run_folder.prepare(run, overwrite, ctx.main)
    distributed.init(ctx, choice.device)
    handler = add_log_file(run / "train.log") if ctx.main else None
    if not ctx.main:
        logging.getLogger("leakhunter").setLevel(logging.WARNING)
    try:
        dataset_dir = Path(dataset_dir)
        train_data, val_data = _splits(dataset_dir, config, state)
        if state is None:  # a resumed run keeps the batch size and rate it started with
            config = batches.resolve_auto(config, choice.device,
                                          train_data.segments // ctx.world)
        return Trainer(train_data, val_data, dataset_dir, run, config, ctx, choice, state,
                       init_state, lineage, on_epoch).fit()
    finally:
        if handler:
            remove_log_file(handler)
        distributed.close(ctx)


def _resumed_config(state: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    # a run started before augmentation and the pooled head existed continues as it began
    began = {**state["config"], "augment": state["config"].get("augment", [])}
    began["model"] = {"pool": "flatten", **began.get("model", {})}
    saved = to_dict(from_dict(TrainConfig, began))
    changed = [k for k, v in overrides.items() if k.split(".")[0] not in RESUMABLE
               and _get(saved, k) != (list(v) if isinstance(v, tuple) else v)]
    if changed:
        raise InputError(f"--resume: the checkpoint's settings win; these would change the "
                         f"run and are refused: {', '.join(sorted(changed))}")
    for key, value in overrides.items():
        if key in RESUMABLE and saved[key] != value:
            log.info("resume: %s changed from %s to %s", key, saved[key], value)
            saved[key] = value
    return from_dict(TrainConfig, saved)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _splits(dataset_dir: Path, cfg: TrainConfig, state: dict[str, Any] | None
            ) -> tuple[SplitData, SplitData]:
    """TRAINING and VALIDATION of ``dataset_dir``, checked: built alike, ``cfg.positive``
    among their classes (and not all of them), and, for a resumed run (``state``), as the
    run was started on. Raises :class:`DatasetError` or :class:`InputError`."""
    tr = load_split(dataset_dir / SPLIT_FILES["TRAINING"], cfg.preload)
    va = load_split(dataset_dir / SPLIT_FILES["VALIDATION"], cfg.preload)
    if tr.labels != va.labels or tr.feature != va.feature:
        raise DatasetError(f"{dataset_dir.resolve()}: TRAINING and VALIDATION were built "
                           f"differently (labels or feature config)")
    missing = [p for p in cfg.positive if p not in tr.labels]
    if missing:
        raise InputError(f"--positive {','.join(missing)}: no such class in the dataset "
                         f"(classes: {', '.join(tr.labels)})")
    if len(cfg.positive) == len(tr.labels):
        raise InputError("--positive names every class; at least one must be 'no leak'")
    if state is not None and (state["class_names"] != tr.labels
                              or state["feature_config"] != to_dict(tr.feature)):
        raise DatasetError(f"{dataset_dir.resolve()}: the dataset now has a different feature "
                           f"config or classes than the run being resumed; rebuild it "
                           f"as before or start a new run")
    return tr, va
