"""Grouped, stratified, deterministic splitting."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from leakhunter.config import SPLITS, SplitConfig
from leakhunter.dataset.splits import SplitItem, assign_splits
from leakhunter.errors import InputError


def _items(sensors_per_label: int = 10, per_sensor: int = 12,
           labels: tuple[str, ...] = ("LEAK", "NOLEAK")) -> list[SplitItem]:
    items = []
    for lab in labels:
        for s in range(sensors_per_label):
            for r in range(per_sensor + s % 3):  # sensors of uneven size
                items.append(SplitItem(lab, f"{lab}-S{s}", f"{lab}-{s}-{r}"))
    return items


def test_sensors_never_cross_splits_and_every_label_is_everywhere() -> None:
    items = _items()
    splits = assign_splits(items, SplitConfig())
    where = defaultdict(set)
    for it, sp in zip(items, splits):
        where[it.group].add(sp)
    assert all(len(s) == 1 for s in where.values())
    per = Counter(zip(splits, (it.label for it in items)))
    for sp in SPLITS:
        for lab in ("LEAK", "NOLEAK"):
            assert per[sp, lab] > 0


def test_fractions_are_close_to_target() -> None:
    items = _items(sensors_per_label=30, per_sensor=10)
    splits = assign_splits(items, SplitConfig())
    n = Counter(splits)
    for sp, frac in zip(SPLITS, (0.7, 0.2, 0.1)):
        assert abs(n[sp] / len(items) - frac) < 0.03, (sp, n[sp])


def test_deterministic_for_a_seed_and_seed_matters() -> None:
    items = _items(sensors_per_label=20)
    a = assign_splits(items, SplitConfig(seed=1))
    assert a == assign_splits(items, SplitConfig(seed=1))
    assert a != assign_splits(items, SplitConfig(seed=2))


def test_multiclass_is_stratified() -> None:
    labels = ("BACKGROUND", "CRACK", "LEAK", "NORMAL", "UNCLASSIFIED")
    items = _items(sensors_per_label=8, labels=labels)
    splits = assign_splits(items, SplitConfig())
    per = Counter(zip(splits, (it.label for it in items)))
    assert all(per[sp, lab] > 0 for sp in SPLITS for lab in labels)


def test_identical_content_lands_in_one_split() -> None:
    items = _items()
    # copy S0's first recording under every other NOLEAK sensor: all must join one split
    dup = items[0].content_hash
    items = [SplitItem(it.label, it.group, dup) if it.group.endswith("S5") else it
             for it in items]
    splits = assign_splits(items, SplitConfig())
    assert len({sp for it, sp in zip(items, splits) if it.content_hash == dup}) == 1


def test_recordings_without_sensor_are_split_individually() -> None:
    items = [SplitItem(lab, f"path:{lab}{i}", f"{lab}{i}")
             for lab in ("LEAK", "NOLEAK") for i in range(40)]
    n = Counter(assign_splits(items, SplitConfig()))
    assert (n["TRAINING"], n["VALIDATION"], n["TESTING"]) == (56, 16, 8)


def test_group_by_recording_ignores_sensors() -> None:
    items = _items(sensors_per_label=2)  # two sensors cannot fill three splits
    with pytest.raises(InputError, match="--group-by recording"):
        assign_splits(items, SplitConfig())
    splits = assign_splits(items, SplitConfig(group_by="recording"))
    assert set(splits) == set(SPLITS)
