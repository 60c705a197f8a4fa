"""Mixed precision (leakhunter.runtime.amp): what ``auto`` picks on each GPU generation, with
CUDA simulated (the ``fake_cuda`` fixture, tests/helpers/cuda.py), and on the CPU."""

from __future__ import annotations

import pytest
import torch

from leakhunter.runtime import devices
from leakhunter.runtime.amp import resolve_amp

from ..helpers.cuda import FakeCuda


@pytest.mark.parametrize("capability,expected", [((9, 0), "bf16"), ((8, 0), "bf16"),
                                                 ((7, 5), "fp16")])
def test_precision_auto_on_gpus(fake_cuda: FakeCuda, capability: tuple[int, int],
                                expected: str) -> None:
    fake_cuda.capability = capability
    gpu = devices.resolve("cuda", "train").device
    assert resolve_amp("auto", gpu) == expected
    assert resolve_amp("off", gpu) == "off" and resolve_amp("fp16", gpu) == "fp16"
    assert resolve_amp("auto", torch.device("cpu")) in ("bf16", "off")
