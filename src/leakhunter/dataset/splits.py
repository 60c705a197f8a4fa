"""Splitting recordings into TRAINING / VALIDATION / TESTING, grouped and stratified.

Grouped: every recording of one group (a sensor, from the file name or the manifest's
``group``) lands in one split, and so does every copy of the same audio content (by hash),
so a model is never tested on a sensor or a recording it was trained on. Recordings without a
known sensor are their own group.

Stratified: groups are placed greedily, largest first, each into the split where it brings
the per-label counts closest to the target fractions; then any split left without a label
takes the smallest group of that label from a split that has more than one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from ..config import SPLITS, SplitConfig
from ..errors import InputError


@dataclass(frozen=True)
class SplitItem:
    """What the splitter needs of one recording."""

    label: str
    group: str  # sensor id, manifest group, or a unique key when unknown
    content_hash: str


def assign_splits(items: list[SplitItem], cfg: SplitConfig) -> list[str]:
    """Split name for each item, deterministic for ``cfg.seed``.

    Raises :class:`InputError` when some label cannot be present in every split.
    """
    groups = _merge_groups(items, by_sensor=cfg.group_by == "sensor")
    labels = sorted({it.label for it in items})
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    counts = {g: Counter(items[i].label for i in idx) for g, idx in members.items()}
    total = Counter(it.label for it in items)
    target = np.array([[f * total[lab] for lab in labels] for f in cfg.fractions])
    scale = np.array([max(total[lab], 1) for lab in labels], dtype=float)

    rng = np.random.default_rng(cfg.seed)
    order = list(members)
    rng.shuffle(order)
    order.sort(key=lambda g: -len(members[g]))  # stable: ties keep the seeded order

    current = np.zeros_like(target)
    where: dict[int, int] = {}
    for g in order:
        vec = np.array([counts[g][lab] for lab in labels], dtype=float)
        costs = []
        for s in range(len(SPLITS)):
            trial = current.copy()
            trial[s] += vec
            costs.append(float((((trial - target) / scale) ** 2).sum()))
        best = int(np.argmin(costs))
        where[g] = best
        current[best] += vec

    _fill_empty(where, counts, labels)
    out = [SPLITS[where[g]] for g in groups]
    check_every_label(out, [it.label for it in items], labels, cfg.group_by)
    return out


def _merge_groups(items: list[SplitItem], by_sensor: bool) -> list[int]:
    """Group id per item: union of same-group (when ``by_sensor``) and same-content items."""
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, it in enumerate(items):
        keys = [("hash", it.content_hash)] + ([("group", it.group)] if by_sensor else [])
        for key in keys:
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    roots = [find(i) for i in range(len(items))]
    ids = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return [ids[r] for r in roots]


def _fill_empty(where: dict[int, int], counts: dict[int, Counter], labels: list[str]) -> None:
    """Move the smallest group of a label into any split left without that label, taking it
    from the split with the most groups of that label (when it has more than one)."""
    for s in range(len(SPLITS)):
        for lab in labels:
            if any(where[g] == s and counts[g][lab] for g in where):
                continue
            holders: dict[int, list[int]] = defaultdict(list)
            for g in where:
                if counts[g][lab]:
                    holders[where[g]].append(g)
            donor = max(holders, key=lambda d: len(holders[d]), default=None)
            if donor is None or len(holders[donor]) < 2:
                continue
            where[min(holders[donor], key=lambda g: (sum(counts[g].values()), g))] = s


def check_every_label(splits: list[str], labels_of_items: list[str], labels: list[str],
                      group_by: str | None = None) -> None:
    """Raise :class:`InputError` if some split has no recording of some label."""
    present = defaultdict(set)
    for split, lab in zip(splits, labels_of_items):
        present[split].add(lab)
    for split in SPLITS:
        missing = [lab for lab in labels if lab not in present[split]]
        if missing:
            hint = ("too few sensors to split by sensor; add recordings or use "
                    "--group-by recording" if group_by == "sensor" else
                    "add recordings of that label" if group_by else
                    "add recordings of that label to that split")
            raise InputError(f"label {', '.join(missing)} has no recordings in {split} "
                             f"({hint})")
