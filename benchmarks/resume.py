"""Benchmark: `predict --resume` on a large archive costs what its new recordings cost.

An archive of ``--archive`` recordings (default 100,000) of which ``--new`` (default 1,000)
are not yet in the results file. The old ones are hard links to a pool of generated
recordings (no disk space, and the per-recording judging cost does not depend on which
recording it is); their rows in the results file are the pool's real rows under the
archive's paths, as an earlier run would have written them. Timed, as CLI runs (start-up
included), median of ``--repeats``:

* ``predict --resume`` over the whole archive (judges the new ones only);
* ``predict`` of the new recordings alone, into a fresh file (the per-recording cost).

Both are timed with the peak memory of their whole process tree (benchmarks/memory.py).

The resume overhead per already-done recording is their difference divided by the number of
done recordings, printed as a ratio to the cost of judging one recording. Peak memory of the
resume run's process tree is printed too.

    python benchmarks/resume.py [--archive 100000] [--new 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from memory import peak_memory  # benchmarks/memory.py

from leakhunter.config import ModelConfig, SynthConfig, TrainConfig
from leakhunter.dataset.build import build_dataset
from leakhunter.decisions.predictions_file import info_path
from leakhunter.recordings.synth.synth import synthesize
from leakhunter.training.train import train

POOL = 500  # distinct recordings behind the archive's old paths


def prepare(work: Path, archive: int, new: int) -> tuple[Path, Path, Path]:
    """(model, archive folder, results file holding every old recording's row)."""
    model = work / "run" / "best.pt"
    if not model.exists():
        synthesize(work / "train-rec", SynthConfig(count=60, seed=3), overwrite=True)
        build_dataset(work / "train-rec", work / "dataset", overwrite=True)
        train(work / "dataset", work / "run", TrainConfig(epochs=1, model=ModelConfig()),
              overwrite=True)
    root = work / "archive"
    results = work / "old.csv"
    if root.exists():
        return model, root, results
    synthesize(work / "pool", SynthConfig(count=POOL // 2, seed=4, out_of_water=0))
    synthesize(root / "new", SynthConfig(count=new // 2, seed=5, out_of_water=0))
    pool_rows = work / "pool.csv"
    peak_memory([*_cli(model), str(work / "pool"), "--out", str(pool_rows), "--resume"])
    with pool_rows.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, list(reader)
    old = archive - new
    with results.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for i in range(old):  # a night's folder per 1,000 recordings
            row = rows[i % len(rows)]
            dst = root / "old" / f"night{i // 1000:03d}" / f"{i:06d}~{Path(row['path']).name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(row["path"], dst)
            writer.writerow({**row, "path": str(dst)})
    info = json.loads(info_path(pool_rows).read_text())
    info["predictions"] = results.name
    info_path(results).write_text(json.dumps(info, indent=2) + "\n")
    return model, root, results


def _cli(model: Path) -> list[str]:
    return [sys.executable, "-m", "leakhunter", "-q", "predict", str(model)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=int, default=100_000,
                        help="recordings in the archive (default: 100000)")
    parser.add_argument("--new", type=int, default=1000,
                        help="of which not yet judged (default: 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs each (default: 3)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="leakhunter-bench-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    model, root, old = prepare(work, args.archive, args.new)

    resume_t, plain_t, peaks, plain_peaks = [], [], [], []
    for _ in range(args.repeats):
        results = work / "results.csv"
        shutil.copy(old, results)
        shutil.copy(info_path(old), info_path(results))
        wall, peak = peak_memory([*_cli(model), str(root), "--out", str(results),
                                  "--resume"])
        resume_t.append(wall)
        peaks.append(peak)
        wall, peak = peak_memory([*_cli(model), str(root / "new"), "--out",
                                  str(work / "plain.csv")])
        plain_t.append(wall)
        plain_peaks.append(peak)
    done = args.archive - args.new
    r, p = statistics.median(resume_t), statistics.median(plain_t)
    per_recording = p / args.new
    per_done = max(r - p, 0.0) / done
    print(f"archive: {args.archive:,} recordings, {done:,} already in the results file, "
          f"{args.new:,} new (10 s each)")
    print(f"predict of the {args.new:,} new alone:          {p:7.2f} s  "
          f"({per_recording * 1000:.2f} ms per recording)")
    print(f"predict --resume over the whole archive: {r:7.2f} s  ({r / p:.2f}x the new alone)")
    print(f"resume overhead per already-done recording: {per_done * 1e6:.1f} us, "
          f"{per_done / per_recording:.4f} of judging one")
    print(f"peak memory (process tree): {statistics.median(peaks):.0f} MiB for the resume run, "
          f"{statistics.median(plain_peaks):.0f} MiB for the new alone")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
