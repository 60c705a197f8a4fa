"""Sensor-grouped, label-stratified cross-validation folds over a study's recordings.

Every recording is tested in exactly one fold. Within a fold, the recordings of a sensor are
all in one part (training, validation or test), so a model is never scored on a sensor it
learnt or was stopped on: the paper's question is whether a leak is heard at a pipe never
heard before. Recordings without a sensor id are each their own group (nothing says they
share a sensor), as the build's split treats them.

``folds == 1`` is the build's fixed split (:func:`fixed_split`), so a one-fold study scores
on the same recordings as ``build`` + ``train`` + ``evaluate`` would.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from ..config import MAX_SEED, SplitConfig
from ..dataset.splits import SplitItem, assign_splits
from ..errors import ConfigError, InputError

PARTS = ("training", "validation", "test")


@dataclass(frozen=True)
class Fold:
    """One fold: indices into the study's recordings (``int64``, sorted, disjoint)."""

    index: int  # 0-based
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(train, validation, test)``, in the order of :data:`PARTS`."""
        return self.train, self.validation, self.test


def sensor_folds(labels: Sequence[str], sensors: Sequence[str], folds: int, seed: int,
                 validation_share: float) -> list[Fold]:
    """``folds`` folds over recordings with these ``labels`` and ``sensors`` (one each per
    recording; ``""``: unknown sensor), deterministic for ``seed``.

    Test parts: :class:`StratifiedGroupKFold` (y = label, groups = sensor). Each fold's
    other sensors are split again the same way, seeded ``seed + index``, into ``1 /
    validation_share`` parts, the first of which validates (early stopping, threshold).
    Where a part is left without a label, or a test part leaves fewer than two sensors of
    one to validate and train on, the smallest sensor of it moves (:func:`_balance`).

    Raises :class:`ConfigError` when some label has too few sensors for every part of every
    fold to hold it, naming the label, its sensors and the folds asked; :class:`InputError`
    when the lists differ in length.
    """
    if folds < 2:
        raise ConfigError("sensor-grouped folds need --folds 2 or more (1: the fixed split)")
    if not 0.0 < validation_share < 0.5:
        raise ConfigError("validation_share must be in (0, 0.5)")
    y, groups = _encode(labels, sensors)
    names = sorted(set(y.tolist()))
    _check_sensors(y, groups, names, folds)

    all_idx = np.arange(len(y))
    place = _split_groups(all_idx, y, groups, folds, seed)  # group -> fold testing it
    _balance(place, _label_counts(y, groups), names, range(folds), spare=2)
    out = []
    for k in range(folds):
        test = all_idx[np.array([place[g] == k for g in groups.tolist()], dtype=bool)]
        rest = np.setdiff1d(all_idx, test)
        n_rest = len(np.unique(groups[rest]))
        splits = min(max(2, round(1.0 / validation_share)), n_rest)
        seed_k = (seed + k) % (MAX_SEED + 1)  # wraps: the largest seed is a seed too
        part = _split_groups(rest, y, groups, splits, seed_k)  # group -> 0: validation
        side = {g: 1 if p == 0 else 0 for g, p in part.items()}  # 0 training, 1 validation
        _balance(side, _label_counts(y[rest], groups[rest]), names, (0, 1))
        is_val = np.array([side[g] == 1 for g in groups[rest].tolist()], dtype=bool)
        fold = Fold(k, _sorted(rest[~is_val]), _sorted(rest[is_val]), _sorted(test))
        _check_fold(fold, y, names, folds)
        out.append(fold)
    return out


def fixed_split(labels: Sequence[str], sensors: Sequence[str], split: SplitConfig,
                hashes: Sequence[str] | None = None) -> list[Fold]:
    """The build's split as one :class:`Fold`: :func:`assign_splits` over the recordings,
    TRAINING / VALIDATION / TESTING becoming training / validation / test.

    Groups as the build makes them (``split.group_by``; an unknown sensor is its own
    group). ``hashes`` (audio content, one per recording) also keeps identical audio
    together, as the build does; without them every recording counts as distinct.
    Raises :class:`InputError` (from :func:`assign_splits`) when a split lacks a label.
    """
    y, _ = _encode(labels, sensors)
    if hashes is not None and len(hashes) != len(y):
        raise InputError(f"{len(hashes)} content hashes for {len(y)} recordings")
    by_sensor = split.group_by == "sensor"
    items = [SplitItem(lab, f"sensor:{sen}" if by_sensor and sen else f"recording:{i}",
                       str(hashes[i]) if hashes is not None else f"recording:{i}")
             for i, (lab, sen) in enumerate(zip(y.tolist(), map(str, sensors)))]
    where = np.array(assign_splits(items, split))
    idx = np.arange(len(y))
    return [Fold(0, _sorted(idx[where == "TRAINING"]), _sorted(idx[where == "VALIDATION"]),
                 _sorted(idx[where == "TESTING"]))]


def describe(folds: list[Fold], labels: Sequence[str], sensors: Sequence[str]) -> list[str]:
    """One line per fold: recordings and sensors per part and per label, e.g.
    ``fold 0: training 120 recordings, 14 sensors (LEAK 60/7, NOLEAK 60/7); ...``; then,
    only when some recordings have no sensor id, one more line saying how many."""
    y, groups = _encode(labels, sensors)
    names = sorted(set(y.tolist()))
    lines = []
    for fold in folds:
        parts = []
        for name, idx in zip(PARTS, fold.parts()):
            per = ", ".join(f"{lab} {int((y[idx] == lab).sum())}/"
                            f"{len(np.unique(groups[idx][y[idx] == lab]))}" for lab in names)
            parts.append(f"{name} {len(idx)} recordings, {len(np.unique(groups[idx]))} "
                         f"sensors ({per})")
        lines.append(f"fold {fold.index}: " + "; ".join(parts))
    unknown = sum(1 for s in sensors if not str(s))
    if unknown:
        lines.append(f"{unknown} recording{'s' if unknown != 1 else ''} without a sensor id: "
                     "each counts as its own sensor")
    return lines


def sensors_needed(folds: int) -> int:
    """Fewest sensors of a label that ``folds`` sensor-grouped folds can use: every fold
    tests at least one, and the fold testing most (``ceil(n / folds)``) still leaves one to
    validate and one to train on."""
    if folds < 2:  # the fixed split: one sensor each to train, validate and test
        return 3
    n = folds
    while n - math.ceil(n / folds) < 2:
        n += 1
    return n


def _encode(labels: Sequence[str], sensors: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels as text ``[n]`` and a group id per recording ``[n]`` (int64): one per sensor
    id, and a fresh one for each recording without one."""
    if len(labels) != len(sensors):
        raise InputError(f"{len(labels)} labels for {len(sensors)} sensor ids")
    if not len(labels):
        raise InputError("no recordings to fold")
    ids: dict[str, int] = {}
    groups = np.empty(len(sensors), dtype=np.int64)
    for i, sensor in enumerate(sensors):
        key = str(sensor)
        # an unknown sensor gets a key no sensor id can equal ("\0" never names a sensor)
        groups[i] = ids.setdefault(key if key else f"\0{i}", len(ids))
    return np.array([str(lab) for lab in labels]), groups


def _label_counts(y: np.ndarray, groups: np.ndarray) -> dict[int, Counter]:
    counts: dict[int, Counter] = defaultdict(Counter)
    for lab, g in zip(y.tolist(), groups.tolist()):
        counts[g][lab] += 1
    return counts


def _check_sensors(y: np.ndarray, groups: np.ndarray, names: list[str], folds: int) -> None:
    """Raise :class:`ConfigError` for the first label with fewer sensors than the folds
    need, suggesting the most folds its sensors allow."""
    need = sensors_needed(folds)
    for lab in names:
        have = len(np.unique(groups[y == lab]))
        if have >= need:
            continue
        usable = [k for k in range(2, have + 1) if sensors_needed(k) <= have]
        hint = (f"use --folds {max(usable)}" if usable else
                f"at least {sensors_needed(3)} are needed to test, validate and train; "
                "add recordings of more sensors")
        raise ConfigError(f"{lab} has {have} sensor{'s' if have != 1 else ''}: {folds} "
                          f"sensor-grouped folds need at least {need} ({hint})")


def _split_groups(idx: np.ndarray, y: np.ndarray, groups: np.ndarray, splits: int,
                  seed: int) -> dict[int, int]:
    """Group -> the split (0 .. splits-1) whose test part :class:`StratifiedGroupKFold`
    puts it in, over the recordings ``idx``. Where every label has fewer recordings than
    ``splits`` (a few sensors of one recording each), which sklearn refuses to stratify,
    :class:`GroupKFold` makes the parts and the caller's balance step spreads the labels."""
    most = int(np.unique(y[idx], return_counts=True)[1].max())
    kfold = (StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
             if most >= splits else GroupKFold(n_splits=splits))
    place: dict[int, int] = {}
    with warnings.catch_warnings():
        # "the least populated class has fewer members than n_splits": a part left without
        # a label is filled, or reported, by the caller, in the words of this project
        warnings.simplefilter("ignore", UserWarning)
        for k, (_, test) in enumerate(kfold.split(idx, y[idx], groups[idx])):
            for g in groups[idx[test]].tolist():
                place[g] = k
    return place


def _balance(place: dict[int, int], counts: dict[int, Counter], names: list[str],
             parts: Sequence[int], spare: int = 0) -> None:
    """Move groups between ``parts`` (in place) until every part holds a group of every
    label and, with ``spare``, leaves at least ``spare`` groups of each label to the others.

    A part short of a label takes the smallest group of it from the part holding most (when
    that part has more than one); a part holding too many gives its smallest to the part
    holding fewest. ``spare=2`` keeps one sensor of each label to validate and one to train
    on outside each test fold, which sklearn's recording-count stratification can miss with
    few sensors. What cannot be fixed is left for :func:`_check_fold` to report."""
    for _ in range(4 * len(place)):  # each move fixes one shortfall; bounded all the same
        move = _first_move(place, counts, names, parts, spare)
        if move is None:
            return
        group, dst = move
        place[group] = dst


def _first_move(place: dict[int, int], counts: dict[int, Counter], names: list[str],
                parts: Sequence[int], spare: int) -> tuple[int, int] | None:
    """The ``(group, destination)`` fixing the first shortfall :func:`_balance` finds."""
    size = {g: (sum(c.values()), g) for g, c in counts.items()}  # smallest first, then id
    for lab in names:
        held: dict[int, list[int]] = {p: [] for p in parts}
        for g in sorted(place):
            if counts[g][lab]:
                held[place[g]].append(g)
        total = sum(len(gs) for gs in held.values())
        most = max(parts, key=lambda p: (len(held[p]), -p))
        fewest = min(parts, key=lambda p: (len(held[p]), p))
        if not held[fewest] and len(held[most]) > 1:
            return min(held[most], key=size.__getitem__), fewest
        if spare and len(held[most]) > total - spare and len(held[fewest]) + 1 <= total - spare:
            return min(held[most], key=size.__getitem__), fewest
    return None


def _check_fold(fold: Fold, y: np.ndarray, names: list[str], folds: int) -> None:
    for name, idx in zip(PARTS, fold.parts()):
        missing = [lab for lab in names if not (y[idx] == lab).any()]
        if missing:
            raise ConfigError(f"fold {fold.index}: the {name} part has no "
                              f"{', '.join(missing)} recordings (too few sensors of it for "
                              f"{folds} folds, or sensors recorded under several labels)")


def _sorted(idx: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(idx, dtype=np.int64))
