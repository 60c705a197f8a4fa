"""What ``--device auto`` picks for each command, and why: the one place the policy is
written. :func:`leakhunter.runtime.devices.resolve` applies it; the command line's help
text is made from it. No torch here, so ``leakhunter --help`` stays fast.

Decided from measurements rather than from "a GPU is always faster":

* ``build``: the CPU. Decoding and resampling dominate a build, and they run on CPU cores
  whatever the device; on one H200 with 16 cores the GPU build was slower than the CPU
  build (0.58x). ``--device cuda`` still works and batches many recordings per GPU call.
* ``train``, ``evaluate``, ``calibrate``, ``predict``, ``learn``: CUDA when present (the
  CNN's work is what a GPU is for; decoding in ``predict`` stays on CPU workers either way).
* ``export``: the CPU: the exported graph runs in onnxruntime on the CPU, and its parity
  reference is computed in float32 there.
* ``locate``: the CPU, where each worker reads and correlates its own pairs; ``--device
  cuda`` correlates many pairs per GPU call, but no GPU has measured it yet.
* ``study``: CUDA when present, as ``train``.
"""

from __future__ import annotations

AUTO = {  # what --device auto picks per command, and why
    "build": ("cpu", "decoding and resampling dominate a build and run on CPU cores; the "
                     "GPU build measured slower"),
    "train": ("cuda", "the CNN trains fastest on a GPU"),
    "evaluate": ("cuda", "the CNN scores fastest on a GPU"),
    "calibrate": ("cuda", "the CNN scores fastest on a GPU"),
    "predict": ("cuda", "the CNN scores on the GPU while CPU workers decode"),
    "export": ("cpu", "the exported graph runs in onnxruntime on the CPU"),
    "learn": ("cuda", "fine-tuning and scoring run fastest on a GPU"),
    "study": ("cuda", "each run's CNN trains fastest on a GPU"),
    "locate": ("cpu", "CPU workers read and correlate pairs side by side; the CUDA path "
                      "is not measured yet"),
}


# the commands the demo runs that use a device (synth and report use none)
DEMO_STEPS = ("build", "train", "evaluate", "calibrate", "predict", "export")


def auto_help(command: str | None = None) -> str:
    """What ``--device auto`` means for ``command``, for help text; ``None``: for the
    demo's run of :data:`DEMO_STEPS`, each step's own choice."""
    if command is not None:
        preferred, why = AUTO[command]
        return f"auto = {'CUDA when present' if preferred == 'cuda' else 'the CPU'} ({why})"
    on = {kind: [c for c, (p, _) in AUTO.items() if p == kind and c in DEMO_STEPS]
          for kind in ("cpu", "cuda")}
    return (f"auto = each command's own choice ({', '.join(on['cpu'])} on the CPU; "
            f"{', '.join(on['cuda'])} on CUDA when present)")
