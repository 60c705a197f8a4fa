"""The GPU check: build, train, evaluate and predict on CUDA beside the CPU, one table.

On generated recordings (default 4,000 of 10 s at 4,096 Hz, 11.1 h of audio), in one run:

* build with ``--device cpu`` (all cores) and ``--device cuda``: seconds, x real time, and
  the largest feature difference between the two datasets;
* one training epoch at batch 256 and at the automatic GPU batch size (and, with
  ``--compile``, compiled), each beside a bare loop on the same GPU (benchmarks/train.py);
* batched evaluation against a per-file loop on the GPU (benchmarks/evaluate.py), and the
  whole `evaluate` call on each device;
* predict on every recording with the model on the CPU and on the GPU, decoding included.

    PYTHONPATH=src python3 benchmarks/gpu.py [--recordings 4000] [--device cuda]
                                             [--out DIR] [--compile]

``--device cpu`` runs every step on the CPU instead (a dry run of the script itself).
Figures also go to ``DIR/gpu_figures.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the sibling benchmarks, run as a script
import evaluate as evaluate_bench  # noqa: E402  benchmarks/evaluate.py
import train as train_bench  # noqa: E402  benchmarks/train.py

from leakhunter import devices  # noqa: E402
from leakhunter.config import BuildConfig, EvalConfig, SynthConfig  # noqa: E402
from leakhunter.dataset.build import build_dataset  # noqa: E402
from leakhunter.dataset.store import SPLIT_FILES  # noqa: E402
from leakhunter.evaluate import evaluate  # noqa: E402
from leakhunter.predict import Predictor  # noqa: E402
from leakhunter.synth import synthesize  # noqa: E402


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=4000,
                        help="generated 10 s recordings (default: 4000)")
    parser.add_argument("--device", default="cuda",
                        help="the GPU to measure (default: cuda); cpu = dry run")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs of each training and evaluation figure (default: 2)")
    parser.add_argument("--compile", action="store_true",
                        help="also time an epoch with torch.compile (default: off)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="leakhunter-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    gpu = devices.resolve(args.device, "train")
    figures: dict[str, object] = {"device": gpu.describe(), "torch": torch.__version__,
                                  "cpu_cores": os.cpu_count()}
    print(f"device: {gpu.describe()}; torch {torch.__version__}; {os.cpu_count()} CPU cores",
          flush=True)

    rec = work / "recordings"
    if not rec.exists():
        t, _ = timed(lambda: synthesize(rec, SynthConfig(count=args.recordings // 2, seed=21,
                                                         sensors_per_label=40)))
        print(f"synth: {args.recordings} recordings in {t:.0f} s", flush=True)

    builds = {}
    for name, device in (("cpu", "cpu"), ("gpu", str(gpu.device))):
        wall, report = timed(lambda: build_dataset(rec, work / f"ds-{name}",
                                                   BuildConfig(device=device), overwrite=True))
        builds[name] = {"wall_s": wall, "work_s": report["timings"]["total_s"],
                        "x_realtime": report["speed_x_realtime"], "audio_h":
                        report["audio_s"] / 3600}
        print(f"build --device {device}: {wall:.1f} s wall, "
              f"{report['speed_x_realtime']:.0f}x real time", flush=True)
    builds["max_abs_diff_db"] = _largest_difference(work / "ds-cpu", work / "ds-gpu")
    figures["build"] = builds

    dataset = work / "ds-cpu"
    trains = []
    for batch, compile_ in ((256, False), (0, False), *(((0, True),) if args.compile else ())):
        r = train_bench.measure(dataset, work / "run", gpu.device, batch, args.repeats,
                                compile_)
        r["compile"] = compile_
        trains.append(r)
        print(f"train batch {r['batch']}{' compiled' if compile_ else ''}: "
              f"{r['segments'] / r['epoch_s']:.0f} segments/s, bare loop "
              f"{r['segments'] / r['bare_s']:.0f}, val file F1 {r['val_file_f1']:.4f}",
              flush=True)
    figures["train"] = trains
    model = work / "run" / "best.pt"  # the last run: automatic batch size

    ev = evaluate_bench.measure(dataset / SPLIT_FILES["TESTING"], gpu.device, args.repeats)
    ev["evaluate_call_s"] = {}
    for device in ("cpu", str(gpu.device)):
        t, _ = timed(lambda: evaluate(model, dataset, EvalConfig(), out_dir=work / "eval",
                                      device=device))
        ev["evaluate_call_s"][device] = t
    figures["evaluate"] = ev
    print(f"evaluate: batched {ev['batched_s']:.3f} s, per-file loop {ev['loop_s']:.3f} s",
          flush=True)

    preds = {}
    for device in ("cpu", str(gpu.device)):
        predictor = Predictor(model, device=device)
        times = []
        for _ in range(args.repeats):
            t, records = timed(lambda: list(predictor.predict([rec])))
            times.append(t)
        audio_s = sum(r["duration_s"] or 0 for r in records)
        preds[device] = {"wall_s": statistics.median(times),
                         "x_realtime": audio_s / statistics.median(times),
                         "leaks": sum(r["decision"] == "LEAK" for r in records)}
        print(f"predict --device {device}: {preds[device]['wall_s']:.1f} s", flush=True)
    figures["predict"] = preds
    (work / "gpu_figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    _table(figures, gpu.device)


def _largest_difference(a: Path, b: Path) -> float:
    """Largest |difference| (dB) between two builds' TESTING features (same recordings)."""
    with h5py.File(a / SPLIT_FILES["TESTING"], "r") as x, \
            h5py.File(b / SPLIT_FILES["TESTING"], "r") as y:
        if x["mel"].shape != y["mel"].shape:
            return float("inf")
        return float(np.max(np.abs(x["mel"][()].astype(np.float32)
                                   - y["mel"][()].astype(np.float32))))


def _table(f: dict, gpu: torch.device) -> None:
    b, e, p = f["build"], f["evaluate"], f["predict"]
    rows = [
        ("build, CPU (all cores)", f"{b['cpu']['wall_s']:.1f} s",
         f"{b['cpu']['x_realtime']:,.0f}x real time", ""),
        (f"build, {gpu}", f"{b['gpu']['wall_s']:.1f} s", f"{b['gpu']['x_realtime']:,.0f}x "
         f"real time", f"{b['cpu']['wall_s'] / b['gpu']['wall_s']:.2f}x the CPU build "
         f"(max |diff| {b['max_abs_diff_db']:.3f} dB)"),
    ]
    for r in f["train"]:
        rows.append((f"train epoch, batch {r['batch']}{' compiled' if r['compile'] else ''}",
                     f"{r['segments'] / r['epoch_s']:,.0f} seg/s",
                     f"bare loop {r['segments'] / r['bare_s']:,.0f} seg/s",
                     f"{r['epoch_s'] / r['bare_s']:.2f}x bare; val F1 {r['val_file_f1']:.4f};"
                     f" peak {r['gpu_memory_peak_gib']:.2f} GiB"))
    rows += [
        (f"evaluate, batched ({e['recordings']} rec.)", f"{e['batched_s']:.3f} s",
         f"per-file loop {e['loop_s']:.3f} s",
         f"{e['loop_s'] / e['batched_s']:.1f}x faster; {e['batched_s'] / e['bare_s']:.2f}x "
         f"bare"),
        ("evaluate call", " / ".join(f"{d} {t:.1f} s" for d, t in
                                     e["evaluate_call_s"].items()), "", ""),
    ]
    for device, r in p.items():
        rows.append((f"predict, model on {device}", f"{r['wall_s']:.1f} s",
                     f"{r['x_realtime']:,.0f}x real time", f"{r['leaks']} leaks"))
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip())


if __name__ == "__main__":
    main()
