"""Sensor-grouped, label-stratified folds of a study: no sensor in two parts of a fold, every
recording tested once, every label in every part."""

from __future__ import annotations

import numpy as np
import pytest

from leakhunter.config import SplitConfig
from leakhunter.dataset.splits import SplitItem, assign_splits
from leakhunter.errors import ConfigError, InputError
from leakhunter.study.folds import describe, fixed_split, sensor_folds, sensors_needed


def recordings(per_label: dict[str, int], per_sensor: int | None = None,
               seed: int = 0) -> tuple[list[str], list[str]]:
    """Labels and sensor ids: ``per_label[label]`` sensors each, with ``per_sensor``
    recordings (or 2-7 at random), shuffled so a sensor's recordings are not adjacent."""
    rng = np.random.default_rng(seed)
    rows = [(lab, f"{lab.lower()}-{s}") for lab, n in per_label.items() for s in range(n)
            for _ in range(per_sensor or int(rng.integers(2, 8)))]
    order = rng.permutation(len(rows))
    return [rows[i][0] for i in order], [rows[i][1] for i in order]


def groups_of(sensors: list[str]) -> np.ndarray:
    """Sensor id per recording, a recording without one standing for itself."""
    return np.array([s or f"#{i}" for i, s in enumerate(sensors)])


def test_folds_keep_sensors_apart_and_test_each_recording_once() -> None:
    labels, sensors = recordings({"LEAK": 8, "NOLEAK": 12})
    folds = sensor_folds(labels, sensors, 4, seed=0, validation_share=0.2)
    sens = groups_of(sensors)
    assert [f.index for f in folds] == [0, 1, 2, 3]
    for fold in folds:
        train, val, test = (set(sens[p]) for p in fold.parts())
        assert not train & val and not train & test and not val & test
        assert train and val and test
        parts = np.concatenate(fold.parts())
        assert sorted(parts.tolist()) == list(range(len(labels)))  # a partition
        for part in fold.parts():
            assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(labels)))


@pytest.mark.parametrize("folds, per_label", [(2, {"LEAK": 4, "NOLEAK": 4}),
                                              (3, {"LEAK": 3, "NOLEAK": 9}),
                                              (5, {"A": 5, "B": 6, "C": 7})])
def test_every_part_of_every_fold_holds_every_label(folds: int, per_label: dict) -> None:
    # at the fewest sensors each label may have, over seeds: sklearn stratifies recording
    # counts and can leave one sensor of a label outside a test fold; the balance step
    # must still keep one to validate and one to train on
    for seed in range(12):
        labels, sensors = recordings(per_label, seed=seed)
        y = np.array(labels)
        for fold in sensor_folds(labels, sensors, folds, seed=seed, validation_share=0.3):
            for part in fold.parts():
                assert set(y[part]) == set(per_label)


@pytest.mark.parametrize("folds, per_label", [(2, 6), (3, 6), (2, 8), (3, 4)])
def test_one_recording_per_sensor_still_makes_folds(folds: int, per_label: int) -> None:
    """Few recordings per label: sklearn cannot stratify the validation split (5 parts for
    a 0.2 share) by recording counts; the parts are made by group and balanced instead."""
    labels, sensors = recordings({"LEAK": per_label, "NOLEAK": per_label}, per_sensor=1)
    y = np.array(labels)
    for fold in sensor_folds(labels, sensors, folds, seed=0, validation_share=0.2):
        for part in fold.parts():
            assert set(y[part]) == {"LEAK", "NOLEAK"}


def test_test_parts_keep_the_label_shares() -> None:
    labels, sensors = recordings({"LEAK": 10, "NOLEAK": 20}, per_sensor=4)
    y = np.array(labels)
    for fold in sensor_folds(labels, sensors, 5, seed=3, validation_share=0.2):
        assert abs((y[fold.test] == "LEAK").mean() - 1 / 3) < 0.1
        share = len(fold.validation) / (len(fold.train) + len(fold.validation))
        assert 0.1 <= share <= 0.35  # validation_share of the remaining sensors, roughly


def test_the_same_seed_gives_the_same_folds_and_another_seed_others() -> None:
    labels, sensors = recordings({"LEAK": 10, "NOLEAK": 10})

    def parts(seed: int) -> list[list[list[int]]]:
        return [[p.tolist() for p in f.parts()]
                for f in sensor_folds(labels, sensors, 5, seed=seed, validation_share=0.2)]

    assert parts(7) == parts(7)
    assert parts(7) != parts(8)
    # every seed, up to the largest, seeds each fold's validation split too (seed + fold)
    assert len(parts(2**32 - 1)) == 5


def test_too_few_sensors_name_the_label_and_the_folds_that_fit() -> None:
    labels, sensors = recordings({"LEAK": 3, "NOLEAK": 10})
    with pytest.raises(ConfigError) as info:
        sensor_folds(labels, sensors, 5, seed=0, validation_share=0.2)
    assert str(info.value) == ("LEAK has 3 sensors: 5 sensor-grouped folds need at least 5 "
                               "(use --folds 3)")
    assert len(sensor_folds(labels, sensors, 3, seed=0, validation_share=0.2)) == 3
    # two folds test half each: the half left must still validate and train
    with pytest.raises(ConfigError, match="^LEAK has 3 sensors: 2 sensor-grouped folds need "
                                          r"at least 4 \(use --folds 3\)$"):
        sensor_folds(labels, sensors, 2, seed=0, validation_share=0.2)
    labels, sensors = recordings({"LEAK": 10, "NOLEAK": 2})
    with pytest.raises(ConfigError, match="^NOLEAK has 2 sensors: .*add recordings of more "
                                          "sensors"):
        sensor_folds(labels, sensors, 3, seed=0, validation_share=0.2)
    assert [sensors_needed(k) for k in (1, 2, 3, 5, 10)] == [3, 4, 3, 5, 10]


def test_recordings_without_a_sensor_are_each_their_own_group() -> None:
    labels, sensors = recordings({"NOLEAK": 6}, per_sensor=3)
    labels += ["LEAK"] * 10
    sensors += [""] * 10  # ten LEAK recordings, no sensor id: ten groups, not one
    folds = sensor_folds(labels, sensors, 5, seed=0, validation_share=0.25)
    unknown = set(range(len(labels) - 10, len(labels)))
    for fold in folds:
        assert 1 <= len(unknown & set(fold.test.tolist())) <= 3
        assert unknown & set(fold.train.tolist()) and unknown & set(fold.validation.tolist())
    lines = describe(folds, labels, sensors)
    assert len(lines) == 6
    assert lines[-1] == "10 recordings without a sensor id: each counts as its own sensor"


def test_describe_counts_recordings_and_sensors_per_part_and_label() -> None:
    labels = ["LEAK"] * 6 + ["NOLEAK"] * 6
    sensors = ["a", "a", "b", "c", "c", "d", "e", "f", "f", "g", "h", "h"]
    folds = sensor_folds(labels, sensors, 3, seed=0, validation_share=0.3)
    lines = describe(folds, labels, sensors)
    assert len(lines) == 3  # every recording has a sensor: no note
    fold = folds[0]
    y, sens = np.array(labels), np.array(sensors)
    test = fold.test
    leak = test[y[test] == "LEAK"]
    expected = (f"test {len(test)} recordings, {len(set(sens[test]))} sensors (LEAK "
                f"{len(leak)}/{len(set(sens[leak]))}, NOLEAK {len(test) - len(leak)}/")
    assert lines[0].startswith("fold 0: training ") and expected in lines[0]


def test_the_fixed_split_is_the_builds() -> None:
    labels, sensors = recordings({"LEAK": 6, "NOLEAK": 9})
    sensors[:3] = ["", "", ""]
    split = SplitConfig(fractions=(0.6, 0.2, 0.2), seed=4)
    (fold,) = fixed_split(labels, sensors, split)
    items = [SplitItem(lab, f"sensor:{s}" if s else f"path:{i}", f"hash{i}")
             for i, (lab, s) in enumerate(zip(labels, sensors))]
    where = np.array(assign_splits(items, split))
    assert fold.index == 0
    for part, name in zip(fold.parts(), ("TRAINING", "VALIDATION", "TESTING")):
        assert part.tolist() == np.flatnonzero(where == name).tolist()
    # identical audio stays together when its hashes are given
    hashes = [f"h{i}" for i in range(len(labels))]
    hashes[5] = hashes[40] = "same"
    (fold,) = fixed_split(labels, sensors, split, hashes=hashes)
    assert sum(5 in p and 40 in p for p in map(set, map(list, fold.parts()))) == 1


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="folds 2 or more"):
        sensor_folds(["LEAK"], ["a"], 1, seed=0, validation_share=0.2)
    with pytest.raises(InputError):
        sensor_folds(["LEAK", "NOLEAK"], ["a"], 3, seed=0, validation_share=0.2)
    with pytest.raises(ConfigError, match="validation_share"):
        sensor_folds(["LEAK"], ["a"], 3, seed=0, validation_share=0.5)
