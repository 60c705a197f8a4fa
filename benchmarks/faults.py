"""Benchmark: what surviving machine faults costs, against the same code without it.

1. **Orphans.** A `leakhunter build` with 2 workers is killed with SIGKILL once its
   features pass writes; then the time until its last worker has ended. Three variants in
   the same run: as shipped (Linux parent-death signal), with the watchdog thread that
   other systems use, and with neither (the reference: workers are counted still running
   after ``--wait`` seconds, then ended here).
2. **Checkpoint writes.** Saving the default model's full train state (model, AdamW
   state: what `last.pt` holds): leakhunter's ``checkpoint.save`` (serialised in memory,
   written, fsync'd, renamed, folder fsync'd) against the reference ``torch.save`` to a
   temporary file and ``os.replace`` (no fsync), in the same folder.

Medians of ``--repeats`` runs.

    python benchmarks/faults.py [--recordings 300] [--repeats 5] [--wait 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import torch

from leakhunter.config import SynthConfig, TrainConfig
from leakhunter.model import checkpoint
from leakhunter.model.cnn import LeakCNN
from leakhunter.recordings.synth.synth import synthesize

VARIANT = {
    "parent-death signal": "",
    "watchdog thread": "parallel._set_parent_death_signal = lambda: False",
    "none (reference)": "parallel.die_with_parent = lambda pid: None",
}
RUNNER = textwrap.dedent('''
    import sys
    from leakhunter import parallel
    {patch}
    from leakhunter.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def orphan_seconds(rec: Path, work: Path, patch: str, wait: float) -> tuple[float, int, int]:
    """(seconds until the last worker ended, or ``wait``; workers; still running)."""
    out = work / "out"
    script = work / "runner.py"
    script.write_text(RUNNER.format(patch=patch))
    proc = subprocess.Popen([sys.executable, str(script), "-q", "build", str(rec), "--out",
                             str(out), "--workers", "2", "--overwrite"])
    workers: list[psutil.Process] = []
    while not (out / "features.spool.partial").exists() or len(workers) < 2:
        if proc.poll() is not None:
            sys.exit("the build ended before it could be killed; use more --recordings")
        workers = psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    start = time.perf_counter()
    alive = workers
    while alive and time.perf_counter() - start < wait:
        alive = [w for w in alive if _alive(w)]
        time.sleep(0.002)
    took = time.perf_counter() - start
    for w in alive:
        w.kill()
    return took, len(workers), len(alive)


def save_seconds(folder: Path, repeats: int) -> tuple[float, float, float]:
    """(ours, reference) median seconds per save, and the checkpoint's size in MB."""
    cfg = TrainConfig()
    model = LeakCNN(32, 7, 2, [0], cfg.model)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 32, 7)).sum().backward()
    opt.step()  # fills the optimiser state, as in a real last.pt
    state = {"kind": "train-state", "model": model.state_dict(), "optimizer": opt.state_dict()}
    ours, ref = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        checkpoint.save(folder / "ours.pt", state)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        torch.save({**state, "format_version": 1}, folder / "ref.pt.tmp")
        os.replace(folder / "ref.pt.tmp", folder / "ref.pt")
        ref.append(time.perf_counter() - t)
    return statistics.median(ours), statistics.median(ref), \
        (folder / "ours.pt").stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=300, help="per label (default 300)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per variant (default 5)")
    parser.add_argument("--wait", type=float, default=3.0,
                        help="seconds to wait for workers to end (default 3)")
    parser.add_argument("--folder", default=None,
                        help="where to write checkpoints (default: a temporary folder "
                             "under the current one, i.e. on the disk you will use)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder or ".") as tmp:
        work = Path(tmp)
        rec = work / "rec"
        synthesize(rec, SynthConfig(count=args.recordings, seed=1))
        print(f"SIGKILL of `build --workers 2` during its features pass "
              f"({2 * args.recordings} recordings), median of {args.repeats}:")
        results = {}
        for name, patch in VARIANT.items():
            runs = [orphan_seconds(rec, work, patch, args.wait) for _ in range(args.repeats)]
            took = statistics.median(r[0] for r in runs)
            left = sum(r[2] for r in runs)
            total = sum(r[1] for r in runs)
            results[name] = took
            print(f"  {name:<20} last worker ended after {took * 1000:8.1f} ms; "
                  f"{left} of {total} workers still running after {args.wait:g} s")
        ref = results["none (reference)"]
        for name in ("parent-death signal", "watchdog thread"):
            print(f"  {name}: at least {ref / max(results[name], 1e-4):.0f}x sooner than "
                  f"the reference (which never ends: bounded by --wait)")
        ours, reference, size = save_seconds(work, max(args.repeats, 7))
        print(f"checkpoint save ({size:.1f} MB train state), median of "
              f"{max(args.repeats, 7)}: leakhunter {ours * 1000:.1f} ms (atomic, fsync) vs "
              f"torch.save + os.replace {reference * 1000:.1f} ms: ratio "
              f"{ours / reference:.2f}")


if __name__ == "__main__":
    main()
