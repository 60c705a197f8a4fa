"""The model card: the one reader (and writer) of a model file's metadata and decision rule.

A model file (``best.pt``, written by ``train``, ``calibrate`` or ``learn``) holds the
weights and what using them needs: the classes and which of them count as a leak, the
feature and audio settings of its training data, the decision rule, familiarity statistics
and provenance. An ONNX export carries the same in ``model_card.json``; a predictions info
file keeps a copy. Every reader goes through :class:`ModelCard`, so each default is stated
once (in :class:`Rule`) and an override replaces a value only when it is given
(``is not None``: 0.0 is a threshold, not a missing one).

Keys of a model file (``kind = "model"``, see :mod:`.checkpoint`): ``class_names``,
``positive``, ``task``, ``feature_config``, ``audio_config``, ``model_config``,
``dataset_dir``, the rule (:data:`RULE_KEYS`), ``threshold_source``, ``epoch``,
``metrics``, ``parameters``, ``leakhunter_version``, ``parent`` (calibrated and learnt
models), ``familiarity`` and ``model`` (the weights).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..config import AudioConfig, FeatureConfig, ModelConfig, from_dict, to_dict
from ..dataset.segments import SplitData
from ..errors import ConfigError, DatasetError
from ..runtime import safe_write
from . import checkpoint, familiarity
from .checkpoint import CheckpointError
from .cnn import LeakCNN

DEFAULT_THRESHOLD = 0.5
"""The threshold of a model written before ``train`` chose one (``predict`` warns)."""

RULE_KEYS = ("threshold", "threshold_method", "aggregate", "vote_fraction", "class_aggregate")
"""The decision rule's keys in a model file (a missing one is written by an older
leakhunter; its default is :class:`Rule`'s)."""


@dataclass(frozen=True)
class Rule:
    """How the segments of a recording decide it.

    The recording's score (:func:`leakhunter.model.metrics.recording_scores`: the
    ``vote_fraction``-th largest segment leak probability for ``aggregate`` "vote", their
    mean or maximum) is a leak at or above ``threshold``. A multi-class model decides the
    recording's class by ``class_aggregate`` (segment vote or mean class probability).
    ``predict`` judges no recording shorter than ``min_duration_s`` seconds.
    """

    threshold: float = DEFAULT_THRESHOLD
    vote_fraction: float = 0.5
    aggregate: str = "vote"  # vote | mean | max
    class_aggregate: str = "vote"  # vote | mean
    min_duration_s: float = AudioConfig().min_duration_s

    def __post_init__(self) -> None:
        if self.aggregate not in ("vote", "mean", "max"):
            raise ConfigError(f"aggregate must be vote, mean or max, not {self.aggregate!r}")
        if self.class_aggregate not in ("vote", "mean"):
            raise ConfigError(f"class_aggregate must be vote or mean, not "
                              f"{self.class_aggregate!r}")
        if not 0.0 < self.vote_fraction <= 1.0:
            raise ConfigError(f"vote_fraction must be in (0, 1], not {self.vote_fraction}")

    def replace(self, **given: Any) -> Rule:
        """This rule with the values given (not ``None``) in place of its own."""
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about its model (everything but the weights).

    ``rule`` is the decision rule with every default applied; ``stored_threshold`` is the
    threshold as written, ``None`` for a model written before ``train`` chose one (its
    rule then uses :data:`DEFAULT_THRESHOLD`). ``meta`` holds every key as stored, for
    writers that carry a card over into a new file.
    """

    classes: tuple[str, ...]
    positive: tuple[str, ...]
    feature: FeatureConfig
    audio: AudioConfig
    rule: Rule
    stored_threshold: float | None = None
    threshold_method: str | None = None
    threshold_source: dict[str, Any] | None = None
    model_config: ModelConfig | None = None
    familiarity: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    path: str = ""

    @classmethod
    def from_meta(cls, meta: dict[str, Any], path: str | Path = "") -> ModelCard:
        """The card of a model file's metadata (a checkpoint without its weights, or a
        predictions info file's copy). Raises :class:`CheckpointError` when a required key
        is missing or a setting is invalid."""
        missing = [k for k in ("class_names", "positive", "feature_config") if k not in meta]
        if missing:
            raise CheckpointError(f"{path}: not a leakhunter model card (no "
                                  f"{', '.join(missing)})")
        try:
            audio = from_dict(AudioConfig, _table(meta, "audio_config"))
            stored = meta.get("threshold")
            rule = Rule(**{k: meta[k] for k in ("vote_fraction", "aggregate",
                                                "class_aggregate")
                           if meta.get(k) is not None},
                        threshold=DEFAULT_THRESHOLD if stored is None else float(stored),
                        min_duration_s=audio.min_duration_s)
            return cls(
                classes=tuple(meta["class_names"]), positive=tuple(meta["positive"]),
                feature=from_dict(FeatureConfig, meta["feature_config"]), audio=audio,
                rule=rule, stored_threshold=None if stored is None else float(stored),
                threshold_method=meta.get("threshold_method"),
                threshold_source=meta.get("threshold_source"),
                # a model written before ModelConfig.pool flattened its last map
                model_config=from_dict(ModelConfig, {"pool": "flatten",
                                                     **meta["model_config"]})
                if meta.get("model_config") is not None else None,
                familiarity=meta.get("familiarity"),
                meta={k: v for k, v in meta.items() if k != "model"}, path=str(path))
        except ConfigError as exc:
            raise CheckpointError(f"{path}: its model card is invalid ({exc})") from None

    @classmethod
    def from_onnx_card(cls, card: dict[str, Any], path: str | Path = "") -> ModelCard:
        """The card of an exported model's ``model_card.json`` (see :func:`onnx_card`)."""
        training = _table(card, "training")
        meta = {**{k: v for k, v in card.items() if k != "classes"},
                "class_names": card.get("classes"),
                **{k: training.get(k) for k in ("dataset_dir", "epoch", "metrics",
                                                "parameters")}}
        if meta["class_names"] is None:
            meta.pop("class_names")
        return cls.from_meta(meta, path)

    @property
    def positive_indices(self) -> list[int]:
        """Indices of the leak classes in :attr:`classes`."""
        return [self.classes.index(p) for p in self.positive]

    @property
    def multiclass(self) -> bool:
        return len(self.classes) > 2

    @property
    def task(self) -> str:
        return "multiclass" if self.multiclass else "binary"

    def stored_rule(self) -> dict[str, Any]:
        """The rule's keys as the file holds them (``None`` where it holds none)."""
        return {k: self.meta.get(k) for k in RULE_KEYS}

    def fits(self, data: SplitData, what: str = "") -> SplitData:
        """``data`` unchanged when it was built with this model's feature config and
        classes; else :class:`DatasetError` naming the split (``what``: which input it
        is, for the message)."""
        which = f"{what} " if what else ""
        if data.feature != self.feature:
            raise DatasetError(f"{data.path}: {which}built with a different feature config "
                               f"than the model {self.path} was trained on; rebuild it with "
                               f"the model's settings (see its model_meta.json)")
        if tuple(data.labels) != self.classes:
            raise DatasetError(f"{data.path}: {which}classes {', '.join(data.labels)} differ "
                               f"from the model's ({', '.join(self.classes)})")
        return data


def _table(meta: dict[str, Any], key: str) -> dict[str, Any]:
    """``meta[key]``, a table, or an empty one where an older file wrote none (``None``)."""
    value = meta.get(key)
    return {} if value is None else value


def read_card(path: str | Path) -> ModelCard:
    """The card of the model file at ``path``. Raises :class:`CheckpointError`."""
    return ModelCard.from_meta(checkpoint.load(path, "model"), path)


def load_model(path: str | Path, device: torch.device | str = "cpu"
               ) -> tuple[LeakCNN, ModelCard]:
    """The model in a model file (evaluation mode, on ``device``) and its card. Raises
    :class:`CheckpointError` for a file that is not a leakhunter model."""
    state = checkpoint.load(path, "model")
    card = ModelCard.from_meta(state, path)
    return build_model(card, state["model"], device), card


def build_model(card: ModelCard, weights: dict[str, Any],
                device: torch.device | str = "cpu") -> LeakCNN:
    """The model ``card`` describes with ``weights`` (a model file's ``model`` state), in
    evaluation mode on ``device``. Raises :class:`CheckpointError` for a card without a
    model config."""
    if card.model_config is None:
        raise CheckpointError(f"{card.path}: not a usable leakhunter model (no model_config)")
    feature = card.feature
    model = LeakCNN(feature.n_mels, feature.frames_per_segment, len(card.classes),
                    card.positive_indices, card.model_config)
    model.load_state_dict(weights)
    return model.to(device).eval()


def model_meta(identity: dict[str, Any], rule: Rule, how: str, source: dict[str, Any],
               **provenance: Any) -> dict[str, Any]:
    """The metadata of a new model file: ``identity`` (classes, positive, task, feature,
    audio and model configs, dataset), the rule with how and where its threshold was
    chosen, then ``provenance`` (epoch, metrics, parameters; ``parent`` when given)."""
    parent = provenance.pop("parent", None)
    meta = {**identity, "threshold": rule.threshold, "threshold_method": how,
            "aggregate": rule.aggregate, "vote_fraction": rule.vote_fraction,
            "class_aggregate": rule.class_aggregate, "threshold_source": source,
            **provenance, "leakhunter_version": __version__}
    if parent is not None:
        meta["parent"] = parent
    return meta


def write_model_file(path: str | Path, meta: dict[str, Any], weights: dict[str, Any],
                     description: str | Path) -> dict[str, Any]:
    """Write the model file ``path`` (``meta``, its familiarity statistics under
    ``meta["familiarity"]``, and ``weights``), then ``description``: the same metadata
    as JSON, the statistics summarised. Returns that JSON's content. Each file is replaced
    whole (:mod:`leakhunter.runtime.safe_write`)."""
    checkpoint.save(path, {"kind": "model", **meta, "model": weights})  # meta may hold kind
    info = describe(meta)
    safe_write.write_json(description, info)
    return info


def describe(meta: dict[str, Any]) -> dict[str, Any]:
    """A model file's metadata as JSON-able values (familiarity tensors summarised)."""
    info = {k: v for k, v in meta.items() if k not in ("model", "format_version")}
    if info.get("familiarity") is not None:
        info["familiarity"] = familiarity.summary(info["familiarity"])
    return info


def onnx_card(card: ModelCard, **extra: Any) -> dict[str, Any]:
    """The model-card part of an export's ``model_card.json``: classes, the whole decision
    rule (as stored, and the minimum duration), the feature and audio settings, provenance;
    ``extra`` adds the export's own keys."""
    meta = card.meta
    return {
        "classes": list(card.classes), "positive": list(card.positive), "task": card.task,
        **card.stored_rule(), "min_duration_s": card.rule.min_duration_s,
        "threshold_source": card.threshold_source, "parent": meta.get("parent"),
        "feature_config": to_dict(card.feature), "audio_config": to_dict(card.audio),
        "model_config": meta.get("model_config"), **extra,
        "training": {"dataset_dir": meta.get("dataset_dir"), "epoch": meta.get("epoch"),
                     "metrics": meta.get("metrics"), "parameters": meta.get("parameters"),
                     "leakhunter_version": meta.get("leakhunter_version")}}
