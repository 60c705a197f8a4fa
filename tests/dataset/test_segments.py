"""Loading a split's segments (leakhunter.dataset.segments): where they are placed on a GPU,
with CUDA simulated (the ``fake_cuda`` fixture, tests/helpers/cuda.py)."""

from __future__ import annotations

from pathlib import Path

from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.runtime import devices

from ..helpers.cuda import FakeCuda


def test_split_larger_than_the_gpu_stays_in_host_memory(fake_cuda: FakeCuda,
                                                        dataset: Path) -> None:
    data = load_split(dataset / SPLIT_FILES["TRAINING"], "yes")
    fake_cuda.free = 1000  # bytes
    where = data.place(devices.resolve("cuda", "train").device)
    assert where.startswith("in host memory") and data.mel.device.type == "cpu"
