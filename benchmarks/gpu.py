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
                                             [--batch-sizes 256,0] [--out DIR]
                                             [--figures FILE] [--compile]

``--device cpu`` runs every step on the CPU instead (a dry run of the script itself).
A GPU is often lent for minutes, so nothing is lost to one failing step: each step that
raises is reported (traceback, and ``"error"`` in the figures) and the next one runs, and
the figures file (default ``DIR/gpu_figures.json``) is rewritten after every step.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the sibling benchmarks, run as a script
import evaluate as evaluate_bench  # noqa: E402  benchmarks/evaluate.py
import train as train_bench  # noqa: E402  benchmarks/train.py

from leakhunter.config import BuildConfig, EvalConfig, SynthConfig  # noqa: E402
from leakhunter.dataset.build import build_dataset  # noqa: E402
from leakhunter.dataset.store import SPLIT_FILES  # noqa: E402
from leakhunter.decisions.evaluate import evaluate  # noqa: E402
from leakhunter.decisions.predict import Predictor  # noqa: E402
from leakhunter.recordings.synth.synth import synthesize  # noqa: E402
from leakhunter.runtime import devices  # noqa: E402


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _synth_part(args: tuple[Path, int, int, int]) -> int:
    """One part of the generated set (own seed and sensors): ``count`` recordings per label
    into ``folder``; returns the files written."""
    folder, part, count, sensors = args
    return synthesize(folder, SynthConfig(count=count, seed=21 + part,
                                          sensors_per_label=sensors)).files


def synthesize_parallel(rec: Path, recordings: int, workers: int) -> None:
    """``recordings`` generated recordings (two labels) in ``rec``, written by ``workers``
    processes in parts of their own seed, then gathered into one labelled tree. Sensor and
    recording ids get the part's number in front, so parts never share a sensor (the split
    by sensor stays honest) and every name stays distinct."""
    parts = max(1, min(workers, recordings // 200))
    per_label = [recordings // 2 // parts + (i < recordings // 2 % parts) for i in range(parts)]
    sensors = max(2, 40 // parts)  # about 40 sensors per label in all, as one 4,000 set has
    staging = rec.with_name(rec.name + ".parts")
    shutil.rmtree(staging, ignore_errors=True)
    jobs = [(staging / f"{i:02d}", i, n, sensors) for i, n in enumerate(per_label)]
    with ProcessPoolExecutor(parts, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_synth_part, jobs))
    for folder, part, *_ in jobs:
        for wav in folder.glob("*/*.wav"):
            sensor, recording, rest = wav.name.split("~", 2)
            target = rec / wav.parent.name / f"P{part:02d}{sensor}~P{part:02d}{recording}~{rest}"
            target.parent.mkdir(parents=True, exist_ok=True)
            wav.rename(target)
    shutil.rmtree(staging)


class Steps:
    """Runs the check's steps one by one: a step that raises is reported and recorded, and
    the rest still run; the figures file is rewritten after every step."""

    def __init__(self, figures: dict, path: Path):
        self.figures, self.path = figures, path

    def run(self, name: str, fn) -> object:
        try:
            self.figures[name] = fn()
        except Exception as exc:  # noqa: BLE001  one failing step must not lose the others
            traceback.print_exc()
            print(f"gpu.py: step {name!r} FAILED: {type(exc).__name__}: {exc}", flush=True)
            self.figures[name] = {"error": f"{type(exc).__name__}: {exc}"}
        self.path.write_text(json.dumps(self.figures, indent=2, default=str) + "\n")
        return self.figures[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=4000,
                        help="generated 10 s recordings (default: 4000)")
    parser.add_argument("--device", default="cuda",
                        help="the GPU to measure (default: cuda); cpu = dry run")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs of each training and evaluation figure (default: 2)")
    parser.add_argument("--batch-sizes", default="256,0",
                        help="comma-separated training batch sizes to time; 0 = the automatic "
                             "choice (default: 256,0)")
    parser.add_argument("--compile", action="store_true",
                        help="also time an epoch with torch.compile, last (default: off)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--figures", default=None,
                        help="figures file, rewritten after every step "
                             "(default: OUT/gpu_figures.json)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="leakhunter-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    rec = work / "recordings"
    if not rec.exists():  # before CUDA starts: the parts are separate processes
        t, _ = timed(lambda: synthesize_parallel(rec, args.recordings, os.cpu_count() or 1))
        print(f"synth: {args.recordings} recordings in {t:.0f} s", flush=True)
    gpu = devices.resolve(args.device, "train")
    figures: dict[str, object] = {"device": gpu.describe(), "torch": torch.__version__,
                                  "cpu_cores": os.cpu_count()}
    print(f"device: {gpu.describe()}; torch {torch.__version__}; {os.cpu_count()} CPU cores",
          flush=True)
    steps = Steps(figures, Path(args.figures) if args.figures else work / "gpu_figures.json")
    steps.run("build", lambda: _builds(rec, work, gpu.device))
    dataset = work / "ds-cpu"
    batches = [int(b) for b in args.batch_sizes.split(",")]
    steps.run("train", lambda: [_train(dataset, work, gpu.device, b, args.repeats, False)
                                for b in batches])
    model = work / "run" / "best.pt"  # the last run's
    steps.run("evaluate", lambda: _evaluate(dataset, model, work, gpu.device, args.repeats))
    steps.run("predict", lambda: _predict(rec, model, gpu.device, args.repeats))
    if args.compile:  # last: compiling takes long, and the figures above are kept if it fails
        steps.run("train_compiled", lambda: [_train(dataset, work / "compiled", gpu.device, 0,
                                                    args.repeats, True)])
    _table(figures, gpu.device)


def _builds(rec: Path, work: Path, gpu: torch.device) -> dict:
    builds: dict[str, object] = {}
    for name, device in (("cpu", "cpu"), ("gpu", str(gpu))):
        wall, report = timed(lambda: build_dataset(rec, work / f"ds-{name}",
                                                   BuildConfig(device=device), overwrite=True))
        builds[name] = {"wall_s": wall, "work_s": report["timings"]["total_s"],
                        "x_realtime": report["speed_x_realtime"], "audio_h":
                        report["audio_s"] / 3600}
        print(f"build --device {device}: {wall:.1f} s wall, "
              f"{report['speed_x_realtime']:.0f}x real time", flush=True)
    builds["max_abs_diff_db"] = _largest_difference(work / "ds-cpu", work / "ds-gpu")
    return builds


def _train(dataset: Path, work: Path, gpu: torch.device, batch: int, repeats: int,
           compile_: bool) -> dict:
    r = train_bench.measure(dataset, work / "run", gpu, batch, repeats, compile_)
    r["compile"] = compile_
    print(f"train batch {r['batch']}{' compiled' if compile_ else ''}: "
          f"{r['segments'] / r['epoch_s']:.0f} segments/s, bare loop "
          f"{r['segments'] / r['bare_s']:.0f}, val file F1 {r['val_file_f1']:.4f}", flush=True)
    return r


def _evaluate(dataset: Path, model: Path, work: Path, gpu: torch.device, repeats: int) -> dict:
    ev = evaluate_bench.measure(dataset / SPLIT_FILES["TESTING"], gpu, repeats)
    ev["evaluate_call_s"] = {}
    for device in ("cpu", str(gpu)):
        t, _ = timed(lambda: evaluate(model, dataset, EvalConfig(), out_dir=work / "eval",
                                      device=device))
        ev["evaluate_call_s"][device] = t
    print(f"evaluate: batched {ev['batched_s']:.3f} s, per-file loop {ev['loop_s']:.3f} s",
          flush=True)
    return ev


def _predict(rec: Path, model: Path, gpu: torch.device, repeats: int) -> dict:
    preds = {}
    for device in ("cpu", str(gpu)):
        predictor = Predictor(model, device=device)
        times = []
        for _ in range(repeats):
            t, records = timed(lambda: list(predictor.predict([rec])))
            times.append(t)
        audio_s = sum(r["duration_s"] or 0 for r in records)
        preds[device] = {"wall_s": statistics.median(times),
                         "x_realtime": audio_s / statistics.median(times),
                         "leaks": sum(r["decision"] == "LEAK" for r in records)}
        print(f"predict --device {device}: {preds[device]['wall_s']:.1f} s", flush=True)
    return preds


def _largest_difference(a: Path, b: Path) -> float:
    """Largest |difference| (dB) between two builds' TESTING features (same recordings)."""
    with h5py.File(a / SPLIT_FILES["TESTING"], "r") as x, \
            h5py.File(b / SPLIT_FILES["TESTING"], "r") as y:
        if x["mel"].shape != y["mel"].shape:
            return float("inf")
        return float(np.max(np.abs(x["mel"][()].astype(np.float32)
                                   - y["mel"][()].astype(np.float32))))


def _table(f: dict, gpu: torch.device) -> None:
    """The figures as one table; a failed step is one row that says so."""
    rows: list[tuple[str, str, str, str]] = []
    for step in ("build", "train", "evaluate", "predict", "train_compiled"):
        if step not in f:
            continue
        if isinstance(f[step], dict) and "error" in f[step]:
            rows.append((step, "FAILED", f[step]["error"][:60], ""))
        else:
            rows += _ROWS[step](f[step], gpu)
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip())


def _build_rows(b: dict, gpu: torch.device) -> list:
    return [("build, CPU (all cores)", f"{b['cpu']['wall_s']:.1f} s",
             f"{b['cpu']['x_realtime']:,.0f}x real time", ""),
            (f"build, {gpu}", f"{b['gpu']['wall_s']:.1f} s",
             f"{b['gpu']['x_realtime']:,.0f}x real time",
             f"{b['cpu']['wall_s'] / b['gpu']['wall_s']:.2f}x the CPU build "
             f"(max |diff| {b['max_abs_diff_db']:.3f} dB)")]


def _train_rows(runs: list, gpu: torch.device) -> list:
    return [(f"train epoch, batch {r['batch']}{' compiled' if r['compile'] else ''}",
             f"{r['segments'] / r['epoch_s']:,.0f} seg/s",
             f"bare loop {r['segments'] / r['bare_s']:,.0f} seg/s",
             f"{r['epoch_s'] / r['bare_s']:.2f}x bare; val F1 {r['val_file_f1']:.4f};"
             f" peak {r['gpu_memory_peak_gib']:.2f} GiB") for r in runs]


def _evaluate_rows(e: dict, gpu: torch.device) -> list:
    return [(f"evaluate, batched ({e['recordings']} rec.)", f"{e['batched_s']:.3f} s",
             f"per-file loop {e['loop_s']:.3f} s",
             f"{e['loop_s'] / e['batched_s']:.1f}x faster; "
             f"{e['batched_s'] / e['bare_s']:.2f}x bare"),
            ("evaluate call", " / ".join(f"{d} {t:.1f} s"
                                         for d, t in e["evaluate_call_s"].items()), "", "")]


def _predict_rows(p: dict, gpu: torch.device) -> list:
    return [(f"predict, model on {device}", f"{r['wall_s']:.1f} s",
             f"{r['x_realtime']:,.0f}x real time", f"{r['leaks']} leaks")
            for device, r in p.items()]


_ROWS = {"build": _build_rows, "train": _train_rows, "evaluate": _evaluate_rows,
         "predict": _predict_rows, "train_compiled": _train_rows}


if __name__ == "__main__":
    main()
