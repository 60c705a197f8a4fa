"""Reading a split file's segments for training and evaluation.

A :class:`SplitData` holds a split's labels and file index in memory and its features
either in memory (``preload``: a float16 tensor, batches are slices of it) or on disk (read
per batch, the file opened lazily in each DataLoader worker, as h5py handles must not cross
a fork).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from ..config import FeatureConfig
from ..errors import DatasetError
from ..runtime import devices
from .store import open_split, read_split_info

PRELOAD_LIMIT = 2 * 2**30  # bytes of float16 features preloaded by "auto"
GPU_SHARE = 0.5  # a preloaded split moves to the GPU when it takes at most this share of
                 # the free memory: activations, weights and the optimizer need the rest


@dataclass
class SplitData:
    """One split: per-segment ``label`` and ``file_index`` (int64 ``[N]``), per-recording
    ``file_label`` (``[R]``), ``paths`` and ``sensors``; ``mel`` is a float16 tensor
    ``[N, M, F]`` when preloaded, else ``None`` (read with :meth:`batch`). ``file_padded``
    (bool ``[R]``): the recording was shorter than one segment and zero-padded to one."""

    path: Path
    split: str
    labels: list[str]
    feature: FeatureConfig
    label: np.ndarray
    file_index: np.ndarray
    file_label: np.ndarray
    paths: list[str]
    sensors: list[str]
    audio: dict  # the AudioConfig the split was built with (as a dict)
    mel: torch.Tensor | None
    file_padded: np.ndarray | None = None
    _h5: h5py.File | None = None

    @property
    def segments(self) -> int:
        return int(self.label.shape[0])

    @property
    def recordings(self) -> int:
        return int(self.file_label.shape[0])

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        """float32 features ``[len(indices), M, F]`` of the given segments."""
        if self.mel is not None:  # gathered where the split lives (CPU or GPU)
            return self.mel[torch.from_numpy(indices).to(self.mel.device)].float()
        if self._h5 is None:  # opened on first use, in the process that uses it
            self._h5 = open_split(self.path)
        order = np.argsort(indices)
        sorted_idx = indices[order]
        unique, inverse = np.unique(sorted_idx, return_inverse=True)
        block = self._h5["mel"][unique]  # h5py needs increasing indices
        out = np.empty((len(indices), *block.shape[1:]), np.float32)
        out[order] = block[inverse]
        return torch.from_numpy(out)

    def place(self, device: torch.device) -> str:
        """Move preloaded features to ``device`` when they fit; say where they are.

        On CUDA the float16 features move to the GPU when they take at most
        :data:`GPU_SHARE` of its free memory, so batches are gathered there; otherwise they
        stay in host memory and each batch is copied over.
        """
        if self.mel is None:
            return "read from disk per batch"
        size = self.mel.numel() * self.mel.element_size()
        if device.type != "cuda" or self.mel.device == device:
            return f"in {'GPU' if self.mel.device.type == 'cuda' else 'host'} memory " \
                   f"({size / 2**20:.0f} MiB)"
        free = devices.free_memory(device)
        if size > GPU_SHARE * free:
            return (f"in host memory ({size / 2**20:.0f} MiB: more than {GPU_SHARE:.0%} of "
                    f"the GPU's {free / 2**30:.1f} GiB free)")
        self.mel = self.mel.to(device)
        return f"in GPU memory ({size / 2**20:.0f} MiB)"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_h5"] = None  # an open HDF5 handle must not be pickled to a worker
        return state

    def band_statistics(self, block: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation (dB) of each mel band over all segments and frames."""
        total = np.zeros(self.feature.n_mels)
        squares = np.zeros(self.feature.n_mels)
        count = 0
        for lo in range(0, self.segments, block):
            x = self.batch(np.arange(lo, min(lo + block, self.segments))).double().cpu().numpy()
            total += x.sum(axis=(0, 2))
            squares += np.square(x).sum(axis=(0, 2))
            count += x.shape[0] * x.shape[2]
        mean = total / max(count, 1)
        std = np.sqrt(np.maximum(squares / max(count, 1) - mean ** 2, 0.0))
        return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def load_split(path: str | Path, preload: str = "auto") -> SplitData:
    """Open one split file; ``preload``: "yes", "no" or "auto" (when it fits in 2 GiB).

    Raises :class:`DatasetError` for a missing, unfinished or corrupted file, or an empty
    split.
    """
    path = Path(path)
    info = read_split_info(path)
    if info.segments == 0:
        raise DatasetError(f"{path}: the {info.split} split is empty")
    with open_split(path) as h5:
        try:
            audio = json.loads(h5.attrs["build_config"]).get("audio", {})
            label = h5["label"][()].astype(np.int64)
            file_index = h5["file_index"][()].astype(np.int64)
            size = h5["mel"].size * 2
            mel = None
            if preload == "yes" or (preload == "auto" and size <= PRELOAD_LIMIT):
                mel = torch.from_numpy(h5["mel"][()])
        except OSError as exc:
            raise DatasetError(f"{path}: corrupted dataset file ({exc})") from None
    return SplitData(path, info.split, info.labels, info.feature, label, file_index,
                     np.asarray(info.files["label"], np.int64), list(info.files["path"]),
                     list(info.files["sensor_id"]), audio, mel,
                     np.asarray(info.files["padded"], bool))
