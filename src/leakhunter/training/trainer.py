"""The training loop of one run: one flat loop, an epoch at a time.

Optional features are no-ops rather than branches: ``nullcontext()`` when autocast is off,
``GradScaler(enabled=False)`` off CUDA. Losses accumulate on the device and are read only
at log points and at the end of an epoch (each ``.item()``/all-reduce there is a
host-device synchronisation, marked ``# sync``). After every epoch (and on Ctrl-C/SIGTERM,
mid-epoch) the whole state goes to ``checkpoints/last.pt``, from which
:mod:`.train` resumes exactly; an epoch that improves validation file F1 writes
``best.pt`` with the rule chosen on VALIDATION (:mod:`leakhunter.model.card`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from .. import __version__
from ..config import TrainConfig, to_dict
from ..dataset.segments import SplitData
from ..model import checkpoint, familiarity
from ..model.card import Rule, model_meta, write_model_file
from ..model.cnn import LeakCNN, count_parameters
from ..model.scoring import validation_metrics
from ..runtime import devices, safe_write, signals
from ..runtime.amp import autocast, resolve_amp
from ..runtime.log import progress_bar
from ..runtime.parallel import loader_worker_init
from . import batches, distributed, run_folder
from .augment import augment

log = logging.getLogger(__name__)


class Trainer:
    """The state of one run and the loop over it.

    ``train_data`` and ``val_data``: the run's splits, already checked against ``cfg``
    (:func:`leakhunter.training.train.train`); ``state``: a ``last.pt`` to continue from;
    ``init_state``: weights to start from (fine-tuning); ``lineage``: the ``parent``
    written into ``best.pt``; ``on_epoch``: see ``train``.
    """

    def __init__(self, train_data: SplitData, val_data: SplitData, dataset_dir: Path,
                 run: Path, cfg: TrainConfig, ctx: distributed.Context,
                 choice: devices.Choice, state: dict[str, Any] | None,
                 init_state: dict[str, Any] | None = None,
                 lineage: dict[str, Any] | None = None,
                 on_epoch: Callable[[int, dict[str, Any]], None] | None = None):
        device = choice.device
        self.lineage = lineage
        self.run, self.ctx, self.device, self.choice = run, ctx, device, choice
        self.on_epoch = on_epoch
        self.dataset_dir = dataset_dir.resolve()
        self.train_data, self.val_data, self.cfg = train_data, val_data, cfg
        labels = self.train_data.labels
        self.positive = [labels.index(p) for p in cfg.positive]
        feature = self.train_data.feature
        torch.manual_seed(cfg.seed)  # the initial weights (a resumed run restores its state)
        self.model = LeakCNN(feature.n_mels, feature.frames_per_segment, len(labels),
                             self.positive, cfg.model).to(device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        amp = self.amp = resolve_amp(cfg.amp, device)
        self.autocast = autocast(amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.steps_per_epoch = len(batches.batches(self._order(0), cfg.batch_size))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.aug = torch.Generator().manual_seed(cfg.seed + 1)
        weights = batches.class_weights(self.train_data.label, len(labels))
        self.loss_weight = weights.to(device) if cfg.class_weights else None
        self.epoch, self.batch, self.step, self.elapsed = 0, 0, 0, 0.0
        self.best = {"file_f1": -1.0, "loss": math.inf, "epoch": -1}
        self.bad_epochs = 0
        self.partial = [0.0, 0]  # loss sum and segments of the epoch in progress
        if state is None:
            if init_state is not None:  # fine-tuning: the parent's weights and input
                self.model.load_state_dict(init_state)  # normalisation
            else:
                self.model.set_normalisation(*self.train_data.band_statistics())
            self._write_config()
        else:
            self._restore(state)
        # after the band statistics, which are computed on the host
        self.placement = {d.split: d.place(device)
                          for d in (self.train_data, self.val_data)}
        self.train_labels = torch.from_numpy(self.train_data.label).to(
            self.train_data.mel.device if self.train_data.mel is not None else "cpu")
        self.events = run_folder.event_writer(run) if ctx.main else run_folder.NoEvents()
        self.net = torch.compile(self.model) if cfg.compile else self.model
        if ctx.enabled:
            self.net = DistributedDataParallel(
                self.net, device_ids=distributed.ddp_device_ids(device))

    # --- set-up -----------------------------------------------------------------------------

    def _order(self, epoch: int) -> np.ndarray:
        return batches.epoch_order(self.train_data.label, epoch, self.cfg.seed, self.ctx.rank,
                                   self.ctx.world, self.cfg.balanced_sampler)

    def _lr_factor(self, step: int) -> float:
        """Linear warm-up, then cosine decay to zero at the last step."""
        warmup = max(1, round(self.cfg.warmup_epochs * self.steps_per_epoch))
        total = max(warmup + 1, self.cfg.epochs * self.steps_per_epoch)
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))

    def _write_config(self) -> None:
        if self.ctx.main:
            safe_write.write_json(self.run / "config.json", {
                "dataset": str(self.dataset_dir), "train": to_dict(self.cfg),
                "world_size": self.ctx.world, "leakhunter_version": __version__})

    # --- checkpoints ------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        labels = self.train_data.labels
        return {"class_names": labels, "positive": list(self.cfg.positive),
                "task": "multiclass" if len(labels) > 2 else "binary",
                "feature_config": to_dict(self.train_data.feature),
                "audio_config": self.train_data.audio,  # how recordings were read
                "model_config": to_dict(self.cfg.model), "dataset_dir": str(self.dataset_dir)}

    def _save_last(self) -> None:
        if not self.ctx.main:
            return
        checkpoint.save(self.run / "checkpoints" / "last.pt", {
            "kind": "train-state", **self._identity(), "config": to_dict(self.cfg),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "batch": self.batch, "step": self.step,
            "elapsed_s": self.elapsed, "best": dict(self.best), "bad_epochs": self.bad_epochs,
            "partial": list(self.partial),
            "rng": {"torch": torch.get_rng_state(), "augment": self.aug.get_state(),
                    "cuda": devices.rng_state(self.device)}})

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.elapsed, self.best = state["elapsed_s"], state["best"]
        self.bad_epochs, self.partial = state["bad_epochs"], list(state["partial"])
        torch.set_rng_state(state["rng"]["torch"])
        self.aug.set_state(state["rng"]["augment"])
        devices.set_rng_state(self.device, state["rng"]["cuda"])
        if self.ctx.main:
            run_folder.trim_metrics(self.run / "metrics.csv", self.epoch)
        f1 = self.best["file_f1"]  # below 0 until an epoch has finished
        log.info("resumed %s at epoch %d, batch %d (step %d); best file F1 so far %s", self.run,
                 self.epoch + 1, self.batch, self.step, f"{f1:.4f}" if f1 >= 0 else "none")

    def _save_best(self, metrics: dict[str, float], rule: Rule, how: str) -> None:
        """Write ``best.pt`` once, with the decision rule chosen on VALIDATION from this
        very model's scores (``rule`` and ``how``, from :func:`validation_metrics`): the
        file is complete when written and never changes afterwards (``calibrate`` makes
        new ones). Rank 0 only; a resumed run keeps the best.pt it had until an epoch
        beats it."""
        if not self.ctx.main:
            return
        rule = rule.replace(class_aggregate=self.cfg.class_aggregate)
        source = {"command": "train", "dataset": str(self.dataset_dir),
                  "split": "VALIDATION", "epoch": self.epoch,
                  "target_specificity": self.cfg.target_specificity}
        meta = model_meta(self._identity(), rule, how, source, epoch=self.epoch,
                          metrics=metrics, parameters=count_parameters(self.model),
                          parent=self.lineage)
        meta["familiarity"] = familiarity.fit(self.model, self.train_data, self.val_data,
                                              self.device, self.cfg.seed, self.autocast)
        write_model_file(self.run / "best.pt", meta, self.model.state_dict(),
                         self.run / "model_meta.json")
        self.best.update(threshold=rule.threshold, threshold_method=how)

    # --- the loop ---------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        self._log_start()
        cfg = self.cfg
        stopped = "epochs"
        while self.epoch < cfg.epochs:
            if cfg.time_budget_s and self._budget_spent():
                stopped = "time budget"
                break
            self._train_epoch()
            if self.bad_epochs >= cfg.patience:
                stopped = f"early stopping (no better validation F1 in {cfg.patience} epochs)"
                break
        self.events.close()
        if self.ctx.main:
            run_folder.write_training_curves(self.run / "metrics.csv",
                                             self.run / "curves.png")
        log.info("finished after %d epoch(s) (%s); best validation file F1 %.4f at epoch %d",
                 self.epoch, stopped, self.best["file_f1"], self.best["epoch"])
        if self.ctx.main and self.best.get("threshold") is not None:
            log.info("best.pt decides with threshold %.4f (%s)", self.best["threshold"],
                     self.best["threshold_method"])
        return {"epochs": self.epoch, "stopped": stopped, "best": self.best,
                "run_dir": str(self.run)}

    def _train_epoch(self) -> dict[str, Any]:
        cfg, dev = self.cfg, self.device
        started = time.perf_counter()
        devices.reset_peak_memory(dev)
        self.net.train()
        todo = batches.batches(self._order(self.epoch), cfg.batch_size)
        loss_sum = torch.tensor(self.partial[0], dtype=torch.float64, device=dev)
        seen = carried = self.partial[1]  # segments of this epoch trained before a resume
        fill = self.model.norm_mean
        bar = progress_bar(total=len(todo), desc=f"epoch {self.epoch + 1}", unit="batch",
                           safe_point=False)
        bar.update(self.batch)
        for idx, x, y in self._feed(todo[self.batch:]):
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            if cfg.augment:
                x = augment(x, cfg.augment, self.aug)
            if cfg.spec_augment:
                x = batches.spec_augment(x, fill, self.aug)
            partner, lam = None, 1.0
            if cfg.mixup > 0:
                x, partner, lam = batches.mixup(x, cfg.mixup, self.aug)
            with self.autocast:
                out = self.net(x)
                loss = self._loss(out, y, partner, lam)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += loss.detach().double() * len(idx)
            seen += len(idx)
            self.step += 1
            self.batch += 1
            bar.update(1)
            if self.step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}")  # sync
            if self._stop_requested():
                self.partial = [float(loss_sum), seen]  # sync
                self.elapsed += time.perf_counter() - started
                self._save_last()
                bar.close()
                raise signals.Interrupted(signals.pending() or 2)
        bar.close()
        train_s = time.perf_counter() - started
        totals = distributed.all_sum(self.ctx, torch.tensor(
            [float(loss_sum), float(seen), float(seen - carried)], dtype=torch.float64,
            device=dev))  # sync; the throughput counts the segments of this start only
        row = self._end_epoch(float(totals[0] / max(totals[1], 1)), train_s, float(totals[2]))
        self.elapsed += time.perf_counter() - started
        self._save_last()
        if self.on_epoch:
            self.on_epoch(self.epoch, row)
        return row

    def _feed(self, todo: list[np.ndarray]) -> Any:
        """``(indices, features, labels)`` per batch: gathered from the preloaded split
        where it lives (on the GPU when it fits there: the epoch's order is copied once,
        no batch crosses the bus), or read from disk by DataLoader workers (each opens the
        HDF5 file itself)."""
        data = self.train_data
        if data.mel is not None and todo:
            flat = torch.from_numpy(np.concatenate(todo)).to(data.mel.device)
            parts = flat.split([len(b) for b in todo])
            return ((idx, data.mel[part].float(), self.train_labels[part])
                    for idx, part in zip(todo, parts))
        if data.mel is not None or self.cfg.loader_workers == 0:
            return ((idx, data.batch(idx), torch.from_numpy(data.label[idx])) for idx in todo)
        return torch.utils.data.DataLoader(
            _Batches(data, todo), batch_size=None, num_workers=self.cfg.loader_workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=4,
            worker_init_fn=loader_worker_init(),  # no orphans if we are killed
            # its own generator: otherwise starting the loader draws from the global RNG,
            # which dropout uses, and runs would depend on how data is read
            generator=torch.Generator().manual_seed(self.cfg.seed))

    def _loss(self, out: torch.Tensor, y: torch.Tensor, partner: torch.Tensor | None,
              lam: float) -> torch.Tensor:
        """Mean loss of a batch: class loss (mixed when mixup is on), plus the auxiliary
        leak-vs-rest loss in multi-class mode."""
        cfg, model = self.cfg, self.model
        gamma = cfg.focal_gamma if cfg.loss == "focal" else None
        logits = model.class_logits(out)
        loss = batches.per_sample_loss(logits, y, self.loss_weight, gamma)
        if partner is not None:
            loss = lam * loss + (1 - lam) * batches.per_sample_loss(
                logits, y[partner], self.loss_weight, gamma)
        loss = loss.mean()
        if model.multiclass and cfg.model.aux_weight > 0:
            leak = model.positive_mask[y].float()
            if partner is not None:
                leak = lam * leak + (1 - lam) * leak[partner]
            aux = torch.nn.functional.binary_cross_entropy_with_logits(out[:, -1].float(), leak)
            loss = loss + cfg.model.aux_weight * aux
        return loss

    def _budget_spent(self) -> bool:
        """Whether the time budget is used up, by rank 0's clock. Every rank must leave the
        loop after the same epoch: each measures its own elapsed time, a few milliseconds
        apart, and a budget ending between two ranks' clocks would send one into the next
        epoch's collectives alone, to wait there until the process-group timeout."""
        spent = torch.tensor([float(self.elapsed >= self.cfg.time_budget_s)],
                             device=self.device)
        return bool(distributed.broadcast(self.ctx, spent).item())  # sync

    def _stop_requested(self) -> bool:
        """Whether Ctrl-C/SIGTERM asks to stop after this step. One process: a host-side
        check every step. Under torchrun every rank must stop at the same step, so the
        flag is all-reduced, at log points only (that all-reduce is a sync)."""
        if not self.ctx.enabled:
            return signals.pending() is not None
        if self.step % self.cfg.log_every:
            return False
        flag = torch.tensor([1.0 if signals.pending() else 0.0], device=self.device)
        return bool(distributed.all_sum(self.ctx, flag).item() > 0)  # sync

    def _end_epoch(self, train_loss: float, train_s: float, segments: float) -> dict[str, Any]:
        """Validate (rank 0, shared with the others), keep the best, log, and count
        epochs without improvement."""
        metrics: dict[str, Any] = {}
        rule, how = None, ""
        result = torch.zeros(2, dtype=torch.float64, device=self.device)
        if self.ctx.main:
            metrics = validation_metrics(self.model, self.val_data, self.positive, self.device,
                                         self.cfg.vote_fraction, autocast=self.autocast,
                                         target_specificity=self.cfg.target_specificity)
            rule, how = metrics.pop("rule"), metrics.pop("how")
            result[:] = torch.tensor([metrics["file_f1"], metrics["loss"]])
        file_f1, val_loss = distributed.broadcast(self.ctx, result).tolist()  # sync
        peak = devices.peak_memory(self.device)
        improved = (file_f1, -val_loss) > (self.best["file_f1"], -self.best["loss"])
        self.epoch += 1
        self.batch, self.partial = 0, [0.0, 0]
        if improved:
            self.best = {"file_f1": file_f1, "loss": val_loss, "epoch": self.epoch}
            self.bad_epochs = 0
            self._save_best({"train_loss": train_loss, **metrics}, rule, how)
        else:
            self.bad_epochs += 1
        row = {"epoch": self.epoch, "step": self.step, "train_loss": train_loss,
               "val_loss": val_loss, "val_segment_accuracy": metrics.get("segment_accuracy"),
               "val_segment_f1": metrics.get("segment_f1"),
               "val_file_accuracy": metrics.get("file_accuracy"), "val_file_f1": file_f1,
               "lr": self.scheduler.get_last_lr()[0], "epoch_s": train_s,
               "segments_per_s": segments / max(train_s, 1e-9),
               "gpu_memory_peak_gib": None if peak is None else peak / 2**30}
        if self.ctx.main:
            run_folder.append_metrics(self.run / "metrics.csv", row)
            for key, value in row.items():
                if key not in ("epoch", "step") and value is not None:
                    self.events.add_scalar(key, value, self.epoch)
            log.info("epoch %3d  train loss %.4f  val loss %.4f  val seg acc %.4f  "
                     "val file F1 %.4f%s  %.0f seg/s%s", self.epoch, train_loss, val_loss,
                     metrics["segment_accuracy"], file_f1, "  *" if improved else "",
                     row["segments_per_s"],
                     "" if peak is None else f"  GPU memory peak {peak / 2**30:.2f} GiB")
        return row

    def _log_start(self) -> None:
        log.info("device: %s%s; precision: %s%s", self.choice.describe(),
                 f"; {self.ctx.world} processes" if self.ctx.enabled else "",
                 "float32" if self.amp == "off" else f"autocast {self.amp}",
                 " with gradient scaling" if self.scaler.is_enabled() else "")
        for data in (self.train_data, self.val_data):
            per = np.bincount(data.file_label, minlength=len(data.labels))
            log.info("%s: %d recordings, %d segments (%s), %s", data.split, data.recordings,
                     data.segments, ", ".join(f"{lab} {n}" for lab, n in zip(data.labels, per)),
                     self.placement[data.split])
        log.info("model: %s parameters; %d steps per epoch of %d segments, peak lr %g",
                 f"{count_parameters(self.model):,}", self.steps_per_epoch,
                 self.cfg.batch_size, self.cfg.lr)
        log.info("config: %s", json.dumps(to_dict(self.cfg)))


class _Batches(torch.utils.data.Dataset):
    """Batches of a split read from disk; item ``i`` is batch ``i`` of the epoch."""

    def __init__(self, data: SplitData, todo: list[np.ndarray]):
        self.data, self.todo = data, todo

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        idx = self.todo[i]
        return idx, self.data.batch(idx), torch.from_numpy(self.data.label[idx])
