"""Device choice (leakhunter.runtime.devices): resolution, description, GPU memory queries
and exact float32, reached on a CPU with CUDA simulated (the ``fake_cuda`` fixture,
tests/helpers/cuda.py). The CUDA branches of other modules are tested with those modules,
with the same fixture (precision: tests/runtime/test_amp.py; batch size: training/
test_batches.py; placement: dataset/test_segments.py; build, predict, the CLI; the whole
pipeline on a real GPU: tests/cli/test_cli.py)."""

from __future__ import annotations

import pytest
import torch

from leakhunter.runtime import devices
from leakhunter.training import distributed

from ..helpers.cuda import FakeCuda

# --- resolution -----------------------------------------------------------------------------

def test_cuda_gets_an_index_and_is_made_current(fake_cuda: FakeCuda) -> None:
    choice = distributed.device_for(distributed.Context(), "cuda")  # crashed before
    assert choice.device == torch.device("cuda", 0) and choice.reason == ""
    assert ("set_device", 0) in fake_cuda.calls


def test_torchrun_takes_the_local_rank(fake_cuda: FakeCuda) -> None:
    fake_cuda.count = 2
    ctx = distributed.Context(rank=1, world=2, local_rank=1)
    for requested in ("auto", "cuda"):
        assert distributed.device_for(ctx, requested).device == torch.device("cuda", 1)
    assert distributed.ddp_device_ids(torch.device("cuda", 1)) == [1]
    assert distributed.ddp_device_ids(torch.device("cpu")) is None
    fake_cuda.count = 1
    with pytest.raises(devices.DeviceError, match="has 1 CUDA device"):
        distributed.device_for(ctx, "cuda")


def test_auto_is_decided_per_command(fake_cuda: FakeCuda) -> None:
    for command in ("train", "evaluate", "predict"):
        choice = devices.resolve("auto", command)
        assert choice.device == torch.device("cuda", 0) and choice.reason
    for command in ("build", "export"):
        choice = devices.resolve("auto", command)
        assert choice.device == torch.device("cpu") and "CPU" in choice.reason


def test_auto_without_cuda_is_the_cpu_and_says_why() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    choice = devices.resolve("auto", "train")
    assert choice.device == torch.device("cpu") and "no CUDA" in choice.reason
    assert "threads" in choice.describe() and "bf16" in choice.describe()


@pytest.mark.parametrize("requested,message", [
    ("cuda:3", "this machine has 2 CUDA device(s) (cuda:0 to cuda:1)"),
    ("tpu", "not a device name"),
    ("mps", "only cpu and cuda are supported"),
])
def test_bad_devices_are_refused(fake_cuda: FakeCuda, requested: str, message: str) -> None:
    fake_cuda.count = 2
    with pytest.raises(devices.DeviceError) as err:
        devices.resolve(requested, "train")
    assert message in str(err.value)


def test_cuda_on_a_machine_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(devices.DeviceError, match="CUDA is not available"):
        devices.resolve("cuda:0", "predict")


def test_description_names_the_gpu(fake_cuda: FakeCuda) -> None:
    text = devices.resolve("auto", "train").describe()
    assert "cuda:0 (NVIDIA H200, compute capability 9.0, 140 GiB)" in text
    assert "auto: the CNN trains fastest on a GPU" in text


# --- memory, precision ----------------------------------------------------------------------

def test_gpu_memory_queries_use_the_index(fake_cuda: FakeCuda) -> None:
    gpu = devices.resolve("cuda", "train").device
    devices.reset_peak_memory(gpu)
    assert devices.peak_memory(gpu) == 3 * 2**30
    assert devices.free_memory(gpu) == fake_cuda.free
    devices.synchronize(gpu)
    assert len(devices.rng_state(gpu)) == 1
    devices.set_rng_state(gpu, [torch.zeros(8, dtype=torch.uint8)] * 2)  # saved on 2 GPUs
    names = [name for name, _ in fake_cuda.calls]
    for name in ("reset_peak_memory_stats", "max_memory_allocated", "mem_get_info",
                 "synchronize"):
        assert name in names
    assert ("set_rng_state_all", 1) in fake_cuda.calls
    cpu = torch.device("cpu")
    assert devices.peak_memory(cpu) is None and devices.rng_state(cpu) == []


def test_exact_float32_turns_tf32_off_and_restores_it() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with devices.exact_float32(torch.device("cuda", 0)):
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
