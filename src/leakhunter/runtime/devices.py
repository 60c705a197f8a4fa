"""Which device a command runs on, and what that device is.

Every command takes ``--device auto|cpu|cuda|cuda:N``; :func:`resolve` turns that into an
*indexed* ``torch.device`` (``cuda`` becomes ``cuda:0``, the current device: some PyTorch
releases refuse ``torch.cuda.set_device(torch.device("cuda"))``), checks it exists, and says
why ``auto`` chose what it chose. What ``auto`` picks per command, and the measurements
behind it, are :mod:`.device_policy`'s.

Only calls that exist in every PyTorch the project allows (``torch>=2.4``) are used, and each
CUDA-only call sits behind a function here so tests reach it with CUDA simulated.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..errors import InputError
from .device_policy import AUTO

log = logging.getLogger(__name__)

class DeviceError(InputError):
    """A ``--device`` that is not a device name, or names a device this machine lacks."""


@dataclass(frozen=True)
class Choice:
    """A resolved device and why it was chosen (``reason`` is empty when it was named)."""

    device: torch.device
    reason: str = ""

    def describe(self) -> str:
        """One log line: the device, what it is, and why ``auto`` took it."""
        why = f"; auto: {self.reason}" if self.reason else ""
        return f"{self.device} ({describe(self.device)}){why}"


def parse(requested: str) -> torch.device | None:
    """``torch.device`` of a ``--device`` value (``None`` for "auto"); raises
    :class:`DeviceError` for anything but auto, cpu, cuda, cuda:N."""
    name = str(requested).strip().lower()
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {requested}: not a device name "
                          f"(auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {requested}: only cpu and cuda are supported")
    return device


def resolve(requested: str, command: str, local_rank: int | None = None) -> Choice:
    """The device ``command`` runs on for ``--device requested``.

    ``local_rank`` (under torchrun) maps ``cuda``/``auto`` to ``cuda:LOCAL_RANK``. Raises
    :class:`DeviceError` for an unknown name, CUDA on a machine without it, or an index
    past the machine's devices.
    """
    device = parse(requested)
    reason = ""
    if device is None:
        preferred, why = AUTO[command]
        if preferred == "cuda" and cuda_available():
            device, reason = torch.device("cuda"), why
        else:
            device = torch.device("cpu")
            reason = why if preferred == "cpu" else "no CUDA device on this machine"
    if device.type == "cuda":
        device = _indexed_cuda(device, requested, local_rank)
    return Choice(device, reason)


def _indexed_cuda(device: torch.device, requested: str, local_rank: int | None) -> torch.device:
    if not cuda_available():
        raise DeviceError(f"--device {requested}: CUDA is not available on this machine "
                          f"(PyTorch {torch.__version__}"
                          f"{', built without CUDA' if torch.version.cuda is None else ''})")
    count = torch.cuda.device_count()
    if device.index is not None:
        index = device.index
    elif local_rank is not None:
        index = local_rank
    else:
        index = torch.cuda.current_device()
    if index >= count:
        raise DeviceError(f"--device {requested}: this machine has {count} CUDA device(s) "
                          f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    return torch.device("cuda", index)


def cuda_available() -> bool:
    return torch.cuda.is_available()


def activate(device: torch.device) -> None:
    """Make ``device`` the current CUDA device (a no-op on the CPU). ``device`` must carry
    an index: pass what :func:`resolve` returns."""
    if device.type == "cuda":
        torch.cuda.set_device(device.index)


def describe(device: torch.device) -> str:
    """GPU name, compute capability and memory; or CPU threads and bf16 support."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device.index)
        return (f"{props.name}, compute capability {props.major}.{props.minor}, "
                f"{props.total_memory / 2**30:.0f} GiB")
    bf16 = "native bf16" if cpu_has_bf16() else "no native bf16"
    return f"CPU, {torch.get_num_threads()} threads, {bf16}"


def cuda_bf16(device: torch.device) -> bool:
    """Whether the GPU computes bf16 natively (compute capability 8.0, Ampere, or later).
    ``torch.cuda.is_bf16_supported()`` is not used: it also says yes for emulated bf16."""
    return torch.cuda.get_device_capability(device.index)[0] >= 8


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:  # not Linux: stay with float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def free_memory(device: torch.device) -> int:
    """Free bytes on ``device`` (CUDA); on the CPU, available system memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device.index)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device.index)


def peak_memory(device: torch.device) -> int | None:
    """Peak bytes allocated by PyTorch on ``device`` since the last reset (CUDA only)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device.index))
    return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device.index)


def rng_state(device: torch.device) -> list[torch.Tensor]:
    """The CUDA generators' states, for an exact resume (empty on the CPU)."""
    return torch.cuda.get_rng_state_all() if device.type == "cuda" else []


def set_rng_state(device: torch.device, states: list[torch.Tensor]) -> None:
    if device.type == "cuda" and states:  # a run resumed on fewer GPUs keeps what fits
        torch.cuda.set_rng_state_all(states[:torch.cuda.device_count()])


@contextmanager
def exact_float32(device: torch.device) -> Iterator[None]:
    """float32 that means float32: TF32 off for cuDNN convolutions (on by default) and for
    matrix products while inside, on a GPU; nothing changes on the CPU."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
