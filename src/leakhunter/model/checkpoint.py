"""Checkpoint files: written once, atomically; read back with ``weights_only=True``.

Two kinds, both plain dicts of tensors and Python values:

* ``checkpoints/last.pt`` (``kind = "train-state"``): everything to resume a run exactly.
* ``best.pt`` (``kind = "model"``): the model and what using it needs (feature config,
  class names, positive set, threshold, metrics) -- a different, smaller state, not a copy
  of ``last.pt``.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import LeakhunterError
from ..runtime import safe_write

FORMAT_VERSION = 1


class CheckpointError(LeakhunterError):
    """A checkpoint is missing, unsafe, or not a leakhunter checkpoint of the expected kind."""


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Serialise ``state`` once, in memory, then replace ``path`` atomically with it
    (:func:`leakhunter.runtime.safe_write.write_bytes`: ``<path>.tmp``, fsync, rename).

    Raises :class:`~leakhunter.errors.StorageError` (disk full, I/O error) naming the size
    needed; then ``path`` is the previous checkpoint, whole, and no ``.tmp`` is left. In
    memory first because a checkpoint is a few megabytes and its size is then known.
    """
    buffer = io.BytesIO()
    torch.save({**state, "format_version": FORMAT_VERSION}, buffer)
    safe_write.write_bytes(path, buffer.getbuffer(), "writing the checkpoint")


def load(path: str | Path, kind: str) -> dict[str, Any]:
    """Read a checkpoint of ``kind`` ("train-state" or "model") onto the CPU.

    Only tensors and plain Python values are accepted (``weights_only=True``); a file that
    needs arbitrary unpickling is refused, as is anything that is not a leakhunter
    checkpoint of that kind. Raises :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # (torch warns of pickle protocols: the error says)
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # only an object outside the allowed types is "Unsupported global"; bytes that are
        # no pickle at all (a text file named best.pt) fail on an operand
        if "Unsupported global" not in str(exc):
            first = str(exc).splitlines()[0]
            why = "not a PyTorch file" if "Weights only load failed" in first else first
            raise CheckpointError(f"{path}: not a readable checkpoint ({why})") from None
        raise CheckpointError(f"{path}: refused: the file holds Python objects other than "
                              f"tensors and plain values") from None
    except Exception as exc:  # torch.load raises many types on arbitrary bytes
        raise CheckpointError(f"{path}: not a readable checkpoint "
                              f"({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a leakhunter {kind} checkpoint (found {found!r})")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {state.get('format_version')} is "
                              f"not supported (this leakhunter reads {FORMAT_VERSION})")
    return state
