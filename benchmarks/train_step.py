"""Benchmark: the training step's settings, each beside the one leakhunter uses, same run.

The bare step of leakhunter's model (forward, loss, backward, AdamW) on random segments
already on the device, at several batch sizes, with one setting changed at a time:

* ``leakhunter``: what ``train`` does now (channels_last on CUDA, bf16/fp16 autocast as
  :func:`leakhunter.precision.resolve_amp` picks, AdamW with its default implementation);
* ``contiguous``: NCHW memory layout instead of channels_last;
* ``cudnn-benchmark``: ``torch.backends.cudnn.benchmark = True`` (cuDNN times its
  convolution algorithms for each shape once);
* ``fused-adamw``: the above and ``AdamW(fused=True)``;
* ``compiled`` (with ``--compile``): the above and ``torch.compile`` (default mode), and
  ``cuda-graphs``: ``mode="reduce-overhead"``, timed last as compiling takes long.

Prints segments/s per setting and batch size, and the ratio to ``leakhunter`` at the same
batch size. Medians of ``--repeats`` timed runs of ``--steps`` steps each.

    PYTHONPATH=src python3 benchmarks/train_step.py [--device auto] [--batch-sizes 4096,16384]
                                                    [--compile] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from leakhunter.config import ModelConfig
from leakhunter.model.cnn import LeakCNN
from leakhunter.runtime import devices
from leakhunter.runtime.amp import autocast, resolve_amp

N_MELS, FRAMES = 32, 7  # one segment of the default feature set-up


def step_time(device: torch.device, batch: int, *, channels_last: bool, cudnn_bench: bool,
              fused: bool, compile_mode: str | None, steps: int, repeats: int) -> float:
    """Median seconds per training step of the bare loop with these settings."""
    torch.backends.cudnn.benchmark = cudnn_bench
    torch.manual_seed(0)
    model = LeakCNN(N_MELS, FRAMES, 2, [0], ModelConfig()).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model, mode=compile_mode) if compile_mode else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3,
                            **({"fused": True} if fused else {}))
    precision = resolve_amp("auto", device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    x = torch.randn(batch * 4, N_MELS, FRAMES, device=device)
    y = torch.randint(0, 2, (batch * 4,), device=device)

    def one(i: int) -> None:
        lo = (i % 4) * batch
        with autocast(precision, device):
            loss = torch.nn.functional.cross_entropy(net(x[lo:lo + batch]), y[lo:lo + batch])
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for i in range(5):  # warm-up: compilation, cuDNN's algorithm search, the allocator
        one(i)
    times = []
    for _ in range(repeats):
        devices.synchronize(device)
        start = time.perf_counter()
        for i in range(steps):
            one(i)
        devices.synchronize(device)
        times.append((time.perf_counter() - start) / steps)
    torch.backends.cudnn.benchmark = False
    return statistics.median(times)


SETTINGS = {  # name: (channels_last on CUDA, cudnn.benchmark, fused AdamW, compile mode)
    "leakhunter": (True, False, False, None),
    "contiguous": (False, False, False, None),
    "cudnn-benchmark": (True, True, False, None),
    "fused-adamw": (True, True, True, None),
}
COMPILED = {"compiled": (True, True, True, "default"),
            "cuda-graphs": (True, True, True, "reduce-overhead")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-sizes", default="4096,16384",
                        help="comma-separated batch sizes (default: 4096,16384)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run "
                        "(default: 20)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (default: 3)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile and CUDA graphs (slow to compile)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    device = devices.resolve(args.device, "train").device
    batches = [int(b) for b in args.batch_sizes.split(",")]
    settings = {**SETTINGS, **(COMPILED if args.compile else {})}
    print(f"device: {device}; precision {resolve_amp('auto', device)}; "
          f"torch {torch.__version__}", flush=True)
    rows: list[dict] = []
    for name, (cl, bench, fused, mode) in settings.items():
        for batch in batches:
            base = next((r["s_per_step"] for r in rows
                         if r["setting"] == "leakhunter" and r["batch"] == batch), None)
            try:
                s = step_time(device, batch, channels_last=cl and device.type == "cuda",
                              cudnn_bench=bench, fused=fused and device.type == "cuda",
                              compile_mode=mode, steps=args.steps, repeats=args.repeats)
            except Exception as exc:  # noqa: BLE001  a setting this torch lacks: say so
                print(f"{name:16s} batch {batch:6d}: FAILED {type(exc).__name__}: {exc}",
                      flush=True)
                continue
            rows.append({"setting": name, "batch": batch, "s_per_step": s,
                         "segments_per_s": batch / s})
            ratio = f"{base / s:5.2f}x leakhunter" if base else ""
            print(f"{name:16s} batch {batch:6d}: {batch / s:12,.0f} segments/s  "
                  f"{s * 1e3:7.2f} ms/step  {ratio}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
