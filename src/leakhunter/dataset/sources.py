"""Finding the recordings to build from, in the three input layouts.

1. A folder of label folders: ``INPUT/<LABEL>/**/<file>`` (split by the tool).
2. A folder already split: ``INPUT/{TRAINING,VALIDATION,TESTING}/<LABEL>/**/<file>``.
3. A CSV manifest with a header row: ``path,label[,split][,group]``; relative paths are
   relative to the manifest's folder.

In the folder layouts, the recordings are those :func:`leakhunter.recordings.files.
is_recording` accepts (an audio extension; hidden files and hidden folders are skipped, as
``predict`` and ``predict --watch`` skip them); a manifest names its files explicitly.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import SPLITS
from ..errors import InputError
from ..recordings.files import is_recording, recordings_under

log = logging.getLogger(__name__)

SPLIT_ALIASES = {
    "training": "TRAINING", "train": "TRAINING",
    "validation": "VALIDATION", "valid": "VALIDATION", "val": "VALIDATION",
    "testing": "TESTING", "test": "TESTING",
}


@dataclass(frozen=True)
class Source:
    """One recording named by the input: its path, label, and what the input says of its
    split and group (``None`` when the input does not say)."""

    path: str
    label: str
    split: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Discovery:
    input: str  # the folder or manifest given
    layout: str  # "label-folders", "split-folders" or "manifest"
    sources: list[Source]
    labels: list[str]  # sorted; index i in the datasets is labels[i]


def discover(input_path: str | Path, one_label: bool = False) -> Discovery:
    """Find every recording under ``input_path`` and its label (``one_label``: a single
    label is enough, as for ``learn --unlabelled``).

    Raises :class:`InputError` when the input is missing, a manifest is malformed, or no
    recording is found at all.
    """
    root = Path(input_path)
    if not root.exists():
        raise InputError(f"{root}: input not found")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise InputError(f"{root}: expected a folder of recordings or a CSV manifest")
        layout, sources = "manifest", _from_manifest(root)
    else:
        split_dirs = _split_folders(root)
        if split_dirs:
            layout = "split-folders"
            sources = [s for split, folder in split_dirs.items()
                       for s in _from_label_folders(folder, split)]
        else:
            layout, sources = "label-folders", _from_label_folders(root, None)
    if not sources:
        raise InputError(f"{root}: no recordings found (expected label folders of audio "
                         f"files such as LEAK/ and NOLEAK/, or a CSV manifest)")
    labels = sorted({s.label for s in sources})
    if len(labels) < 2 and not one_label:
        raise InputError(f"{root}: only one label ({labels[0]}) found; need at least two")
    return Discovery(str(root), layout, sources, labels)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _split_folders(root: Path) -> dict[str, Path]:
    """The split folders of an already-split input, or {} when the input is not split.

    Raises :class:`InputError` when only some of the three split folders exist.
    """
    found = {}
    for child in root.iterdir():
        if child.is_dir() and child.name.upper() in SPLITS:
            found[child.name.upper()] = child
    if found and len(found) < len(SPLITS):
        missing = ", ".join(s for s in SPLITS if s not in found)
        raise InputError(f"{root}: looks already split but lacks {missing}/")
    return {s: found[s] for s in SPLITS} if found else {}


def _from_label_folders(root: Path, split: str | None) -> list[Source]:
    sources: list[Source] = []
    stray = 0
    for child in sorted(root.iterdir()):
        if not _visible(child):
            continue
        if child.is_file():
            stray += is_recording(child)
            continue
        files = recordings_under(child)
        if not files:
            log.warning("label folder %s holds no recordings; label ignored", child)
            continue
        sources.extend(Source(str(f), child.name, split) for f in files)
    if stray:
        log.warning("%d recording(s) directly in %s are outside any label folder and are "
                    "ignored", stray, root)
    return sources


def _from_manifest(path: Path) -> list[Source]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            header = [h.strip().lower() for h in (rows and list(rows[0].keys()) or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read manifest ({exc})") from None
    if not rows:
        raise InputError(f"{path}: manifest has no rows (expected a header "
                         f"'path,label[,split][,group]' and one row per recording)")
    if "path" not in header or "label" not in header:
        raise InputError(f"{path}: manifest header must include 'path' and 'label' "
                         f"(found: {', '.join(header)})")
    base = path.parent
    sources, splits_given = [], set()
    for line, raw in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not row["path"] or not row["label"]:
            raise InputError(f"{path}:{line}: empty path or label")
        split = None
        if row.get("split"):
            split = SPLIT_ALIASES.get(row["split"].lower())
            if split is None:
                raise InputError(f"{path}:{line}: unknown split {row['split']!r} "
                                 f"(use training, validation or testing)")
        splits_given.add(split is not None)
        file = Path(row["path"])
        file = file if file.is_absolute() else base / file
        sources.append(Source(str(file), row["label"], split, row.get("group") or None))
    if len(splits_given) > 1:
        raise InputError(f"{path}: the split column is filled for some rows only; fill it "
                         f"for every row, or leave it empty to let leakhunter split")
    return sources
