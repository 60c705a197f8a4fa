"""`leakhunter calibrate`: a new model file with a new decision rule.

Model files are never changed after they are written: ``train`` writes ``best.pt`` with the
threshold it chose on VALIDATION, ``evaluate`` only reads it. Changing the rule (a target
specificity for a utility's false-alarm budget, a fixed threshold, another aggregation or
vote fraction, a threshold chosen on another site's data) is an explicit act that writes a
new file beside the old one, recording where it came from: the parent file's SHA-256, the
dataset, the split and the method. The weights, configs and class names are copied as they
are, so the new file scores exactly as its parent and differs only in the rule.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import CalibrateConfig
from ..model import checkpoint
from ..model.card import ModelCard, build_model, write_model_file
from ..runtime import devices, locks, outputs
from ..runtime.amp import autocast, resolve_amp
from ..runtime.safe_write import file_sha256
from .evaluate import decision_rule

log = logging.getLogger(__name__)

def meta_path(model_path: str | Path) -> Path:
    """The JSON description written beside a calibrated model: ``<stem>_meta.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + "_meta.json")


@locks.writes_folder(lambda a: Path(a["out"]).parent, "calibrate")
def calibrate(model_path: str | Path, dataset_dir: str | Path, out: str | Path,
              cfg: CalibrateConfig = CalibrateConfig(), overwrite: bool = False,
              device: str = "auto") -> dict[str, Any]:
    """Write ``out``: ``model_path``'s model with the decision rule ``cfg`` chooses on
    ``cfg.split`` of ``dataset_dir``, and its provenance (``parent`` and
    ``threshold_source``); also ``<out stem>_meta.json``. ``model_path`` is only read.

    Returns the new file's metadata (the checkpoint without weights). Raises
    :class:`InputError` when ``out`` or its metadata file is the source or exists without
    ``overwrite``, :class:`CheckpointError` / :class:`DatasetError` for an unusable model
    or dataset.
    """
    model_path, dataset_dir, out = Path(model_path), Path(dataset_dir), Path(out)
    meta = meta_path(out)
    outputs.refuse_clashes([("--out", out), ("its metadata file", meta)],
                           [("MODEL", model_path)], "calibrate writes a new model file; give "
                           "an --out other than the source model")
    outputs.refuse_existing([("", out), (f"where --out {out} puts its metadata", meta)],
                            overwrite)
    parent_hash = file_sha256(model_path)
    dev = devices.resolve(device, "calibrate").device
    state = checkpoint.load(model_path, "model")  # read once: its weights are copied too
    parent = ModelCard.from_meta(state, model_path)
    model = build_model(parent, state["model"], dev)
    rule = decision_rule(model, parent, dataset_dir, dev, threshold=cfg.threshold,
                         target_specificity=cfg.target_specificity, aggregate=cfg.aggregate,
                         vote_fraction=cfg.vote_fraction, class_aggregate=cfg.class_aggregate,
                         split=cfg.split, keep_model_threshold=False,  # always chosen
                         autocast=autocast(resolve_amp("auto", dev), dev))
    how = rule["how"]
    new = {**parent.meta, "threshold": rule["threshold"], "threshold_method": how,
           "aggregate": rule["aggregate"], "vote_fraction": rule["vote_fraction"],
           "class_aggregate": rule["class_aggregate"],
           "threshold_source": {
               "command": "calibrate", "dataset": str(dataset_dir.resolve()),
               "split": rule["split"], "method": how,
               "target_specificity": cfg.target_specificity,
               "fixed_threshold": cfg.threshold},
           # the parent's own rule and lineage, so a chain of calibrations reads back
           "parent": {"path": str(model_path.resolve()), "sha256": parent_hash,
                      "rule": parent.stored_rule(),
                      "threshold_source": parent.threshold_source,
                      "parent": parent.meta.get("parent")},
           "calibrated_with": __version__}
    new.pop("format_version", None)  # checkpoint.save writes the current one
    info = write_model_file(out, new, state["model"], meta)
    log.info("%s: threshold %.4f (%s), from %s (sha256 %s…)", out, rule["threshold"], how,
             model_path, parent_hash[:12])
    return info
