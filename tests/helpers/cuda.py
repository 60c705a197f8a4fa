"""CUDA simulated on a CPU: every CUDA branch of leakhunter reached in a test.

``fake_cuda`` replaces the ``torch.cuda`` functions leakhunter calls with strict stand-ins:
``set_device`` and the per-device queries refuse a device without an index, as some
PyTorch releases do on a real GPU (that refusal once crashed ``train`` before its first
step), so such a call fails here too instead of only on a GPU.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch


class FakeCuda:
    """What the simulated machine has, and which calls reached it."""

    def __init__(self, count: int = 1, capability: tuple[int, int] = (9, 0),
                 free: int = 100 * 2**30):
        self.count, self.capability, self.free = count, capability, free
        self.calls: list[tuple[str, object]] = []

    def index(self, name: str, device: object) -> int:
        """The strict check: an int or an indexed cuda device, within the device count."""
        if isinstance(device, torch.device):
            if device.index is None:
                raise ValueError(f"Expected a torch.device with a specified index or an "
                                 f"integer, but got:{device}")
            device = device.index
        if not isinstance(device, int) or not 0 <= device < self.count:
            raise ValueError(f"{name}: invalid device {device!r}")
        self.calls.append((name, device))
        return device


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    fake = FakeCuda()
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "device_count", lambda: fake.count)
    monkeypatch.setattr(cuda, "current_device", lambda: 0)
    monkeypatch.setattr(cuda, "set_device", lambda d: fake.index("set_device", d))
    monkeypatch.setattr(cuda, "get_device_properties", lambda d: SimpleNamespace(
        name="NVIDIA H200", major=fake.capability[0], minor=fake.capability[1],
        total_memory=140 * 2**30, _=fake.index("get_device_properties", d)))
    monkeypatch.setattr(cuda, "get_device_capability",
                        lambda d: (fake.index("get_device_capability", d), fake.capability)[1])
    monkeypatch.setattr(cuda, "mem_get_info",
                        lambda d: (fake.index("mem_get_info", d), (fake.free, 140 * 2**30))[1])
    monkeypatch.setattr(cuda, "reset_peak_memory_stats",
                        lambda d: fake.index("reset_peak_memory_stats", d) and None)
    monkeypatch.setattr(cuda, "max_memory_allocated",
                        lambda d: (fake.index("max_memory_allocated", d), 3 * 2**30)[1])
    monkeypatch.setattr(cuda, "synchronize", lambda d: fake.index("synchronize", d) and None)
    monkeypatch.setattr(cuda, "get_rng_state_all",
                        lambda: [torch.zeros(8, dtype=torch.uint8)] * fake.count)
    monkeypatch.setattr(cuda, "set_rng_state_all", lambda states: fake.calls.append(
        ("set_rng_state_all", len(states))))
    return fake
