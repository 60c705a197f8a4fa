"""Peak memory of a command's whole process tree, for the benchmarks."""

from __future__ import annotations

import subprocess
import threading
import time

import psutil


def peak_memory(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB summed over its process tree,
    sampled every 20 ms). Exits with a message when the command fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                peak = max(peak, sum(p.memory_info().rss for p in
                                     [parent, *parent.children(recursive=True)]))
            except psutil.Error:  # a worker ended between listing and reading
                pass
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    done.set()
    thread.join()
    if code:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {code}")
    return wall, peak / 2**20
