"""`leakhunter` under torchrun with rank 1's clock running 1000x fast (for test_train):
its own elapsed time passes any time budget after one epoch, rank 0's does not."""

from __future__ import annotations

import os
import sys
import time
import types

import leakhunter.training.train

if os.environ.get("RANK") == "1":
    fast = types.SimpleNamespace(perf_counter=lambda: 1000.0 * time.perf_counter())
    leakhunter.training.train.time = fast  # type: ignore[assignment]

from leakhunter.cli import run  # noqa: E402

sys.argv[0] = "leakhunter"
run()
