"""The search space of `leakhunter tune`, declared once in :data:`SPACE`.

Each parameter names the :class:`~leakhunter.config.TrainConfig` setting it sets (a dotted
path) and how it is drawn: a float or int range (``low``/``high``, ``log``), or a list of
``choices``. A ``--space FILE.toml`` narrows or widens it, one table per parameter::

    [lr]
    low = 5e-4
    high = 5e-3

    [width]
    choices = [8, 16]

    [mixup]
    off = true        # not searched: the train default (or the value given) applies

A setting fixed on the command line or in the ``[train]`` table of ``--config`` is never
searched. The leak threshold is not a parameter: ``evaluate`` chooses it on VALIDATION
for the trained model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig, from_dict, load_toml, to_dict
from ..errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One searched setting. ``kind``: ``float``, ``int`` or ``choice``. ``when``: the
    parameter is drawn only when another has this value (focal gamma needs focal loss).
    ``multiclass``: drawn only for datasets of more than two classes."""

    name: str
    path: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[str, Any] | None = None
    multiclass: bool = False


REPORTED = "val_file_f1"
"""What a trial reports after each epoch for the pruner (:mod:`.trials`): a pruned trial's
last value is the objective's only where the objective is this."""

SPACE: tuple[Param, ...] = (
    Param("batch_size", "batch_size", "choice", choices=(64, 128, 256, 512)),
    Param("lr", "lr", "float", 3e-4, 1e-2, log=True),
    Param("weight_decay", "weight_decay", "float", 1e-4, 0.1, log=True),
    Param("warmup_epochs", "warmup_epochs", "float", 0.0, 2.0),
    # 0 switches clipping off: one parameter for "clip or not, and at which norm"
    Param("grad_clip", "grad_clip", "choice", choices=(0.0, 0.5, 1.0, 2.0, 5.0)),
    Param("loss", "loss", "choice", choices=("ce", "focal")),
    Param("focal_gamma", "focal_gamma", "float", 0.5, 4.0, when=("loss", "focal")),
    Param("class_weights", "class_weights", "choice", choices=(True, False)),
    Param("spec_augment", "spec_augment", "choice", choices=(False, True)),
    Param("mixup", "mixup", "float", 0.0, 0.4),
    Param("width", "model.width", "int", 8, 64, log=True),
    Param("blocks", "model.blocks", "int", 2, 4),
    Param("dense", "model.dense", "choice", choices=(32, 64, 128, 256)),
    Param("dropout", "model.dropout", "float", 0.0, 0.5),
    Param("aux_weight", "model.aux_weight", "float", 0.0, 1.0, multiclass=True),
)

_KEYS = {"low", "high", "log", "choices", "off"}


def load_space(path: str | Path | None, fixed: set[str]) -> tuple[Param, ...]:
    """:data:`SPACE` changed by the TOML file at ``path`` (when given), without the
    parameters whose setting path is in ``fixed`` or that the file switches ``off``.

    Every bound and choice is checked by building a :class:`TrainConfig` with it, so a
    value train would refuse is refused here, before any trial runs. Raises
    :class:`ConfigError` naming the file and the parameter.
    """
    by_name = {p.name: p for p in SPACE}
    changes = load_toml(path) if path else {}
    for name, table in changes.items():
        where = f"{path}: [{name}]"
        if name not in by_name:
            raise ConfigError(f"{path}: unknown parameter {name!r} (known: "
                              f"{', '.join(by_name)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table of low/high/log/choices/off")
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: "
                              f"{', '.join(sorted(_KEYS))})")
        by_name[name] = _changed(by_name[name], table, where)
    switched_off = {n for n, t in changes.items() if isinstance(t, dict) and t.get("off")}
    return tuple(p for p in by_name.values()
                 if p.name not in switched_off and p.path not in fixed)


def _changed(param: Param, table: dict[str, Any], where: str) -> Param:
    if "off" in table and not isinstance(table["off"], bool):
        raise ConfigError(f"{where}: off must be true or false")
    if "choices" in table:
        choices = table["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        param = dataclasses.replace(param, kind="choice", choices=tuple(choices),
                                    low=None, high=None, log=False)
    elif {"low", "high", "log"} & set(table):
        if param.kind == "choice":
            raise ConfigError(f"{where}: {param.name} is drawn from choices; give choices")
        param = dataclasses.replace(param, **{k: table[k] for k in ("low", "high", "log")
                                              if k in table})
        if param.kind == "int" and not all(isinstance(v, int) and not isinstance(v, bool)
                                           for v in (param.low, param.high)):
            raise ConfigError(f"{where}: low and high must be whole numbers")
        if not isinstance(param.log, bool):
            raise ConfigError(f"{where}: log must be true or false")
        if not param.low < param.high:  # type: ignore[operator]
            raise ConfigError(f"{where}: low must be below high")
        if param.log and param.low <= 0:  # type: ignore[operator]
            raise ConfigError(f"{where}: a log range needs low > 0")
    for value in (param.choices or (param.low, param.high)):
        _check_value(param, value, where)
    return param


def _check_value(param: Param, value: Any, where: str) -> None:
    """Refuse a value :class:`TrainConfig` would refuse (wrong type or out of range)."""
    tree = to_dict(TrainConfig())
    set_path(tree, param.path, value)
    try:
        from_dict(TrainConfig, tree)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid {param.name} ({exc})") from None


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set dotted ``path`` (``model.width``) in a nested dict, creating tables."""
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def suggest(trial: Any, space: tuple[Param, ...], multiclass: bool,
            base: dict[str, Any]) -> dict[str, Any]:
    """Draw the settings of one optuna ``trial``: ``{setting path: value}``. ``base`` is the
    train settings tree the drawn values go into (it decides ``when`` conditions on
    parameters that are not searched)."""
    drawn: dict[str, Any] = {}
    for p in space:
        if p.multiclass and not multiclass:
            continue
        if p.when and _current(p.when[0], drawn, base) != p.when[1]:
            continue
        if p.kind == "choice":
            value = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            value = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            value = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
        drawn[p.path] = value
    return drawn


def _current(name: str, drawn: dict[str, Any], base: dict[str, Any]) -> Any:
    """The value parameter ``name`` has in this trial: drawn, or else the fixed one."""
    path = next(p.path for p in SPACE if p.name == name)
    if path in drawn:
        return drawn[path]
    node: Any = base
    for part in path.split("."):
        node = node[part]
    return node


def baseline_params(space: tuple[Param, ...], base: dict[str, Any],
                    multiclass: bool) -> dict[str, Any]:
    """``{parameter name: value}`` of the settings tree ``base`` (the train defaults with
    the fixed settings), for the parameters of ``space`` whose value lies inside it: the
    first trial of a new study trains them, so the study starts from the baseline it has to
    beat. A parameter whose base value is outside its range is drawn instead."""
    params: dict[str, Any] = {}
    for p in space:
        if p.multiclass and not multiclass:
            continue
        if p.when and _current(p.when[0], {}, base) != p.when[1]:
            continue
        value = _current(p.name, {}, base)
        if p.kind == "choice":
            inside = value in p.choices
        else:
            inside = p.low <= value <= p.high and (p.kind == "float" or isinstance(value, int))
        if inside:
            params[p.name] = value
    return params

