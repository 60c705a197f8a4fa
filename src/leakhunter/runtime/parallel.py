"""A pool of worker processes with an ordered, bounded map.

Decoding and feature work run in worker processes; the main process consumes results in
input order (so outputs are deterministic) while at most ``window`` tasks are in flight, so
memory stays bounded however many tasks there are. One pool serves every pass of a command.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

R = TypeVar("R")

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt() parameters
_PR_SET_PDEATHSIG = 1  # prctl() option, <linux/prctl.h>
WATCHDOG_INTERVAL_S = 0.5  # how often a worker without a parent-death signal looks


def default_workers() -> int:
    """One worker per CPU core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def die_with_parent(parent_pid: int) -> None:
    """End this worker process as soon as process ``parent_pid`` ends, however it ends.

    A worker left behind by a parent killed with SIGKILL (the OOM killer, a scheduler's
    hard stop) is reparented to init and keeps its memory until ended by hand. On Linux the
    kernel sends this process SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``;
    strictly, when the parent *thread* that forked it ends, which for our pools is the
    thread that runs the command). Elsewhere a daemon thread checks ``os.getppid()`` every
    :data:`WATCHDOG_INTERVAL_S` seconds. A worker holds no output files of its own, so
    SIGKILL loses nothing the parent had not already lost.
    """
    if not _set_parent_death_signal():
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                         name="leakhunter-parent-watchdog").start()
    # The parent may have died between fork() and the line above, before the kernel knew
    # to signal us: then we are already an orphan (reparented) and must go now.
    if os.getppid() != parent_pid:
        os._exit(1)


def _set_parent_death_signal() -> bool:
    """Ask the Linux kernel for SIGKILL when the parent dies; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCHDOG_INTERVAL_S)
    os._exit(1)


def loader_worker_init() -> Callable[[int], None]:
    """A ``worker_init_fn`` for a torch DataLoader created in this process: its workers,
    too, end with this process (PyTorch's own check notices a dead parent only every 5 s).
    A picklable partial, so it also works with the spawn start method."""
    return functools.partial(_loader_worker_init, os.getpid())


def _loader_worker_init(parent_pid: int, worker_id: int) -> None:
    die_with_parent(parent_pid)


def _worker_init(parent_pid: int) -> None:
    die_with_parent(parent_pid)
    # The main process handles Ctrl-C and shuts the pool down; a worker that also raised
    # KeyboardInterrupt would break the pool mid-task and print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # see _signals_deferred
    # Each worker is one of `workers` processes sharing the cores: one thread each.
    torch.set_num_threads(1)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Let glibc keep freed blocks instead of returning them to the kernel at once.

    A worker allocates and frees the same ~10 MB of frames and spectra per task; by default
    glibc serves such blocks with mmap and unmaps them on free, so every task page-faults
    them in again. Measured on a 300-recording build with 2 workers: system time halved,
    wall time down 12 %. A no-op where glibc is absent.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 512 * 2**20)
    except (OSError, AttributeError):  # musl or another libc
        pass


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM while workers are forked: Python swallows a KeyboardInterrupt
    raised inside its at-fork hooks, which would lose the user's Ctrl-C. A signal that
    arrives meanwhile is delivered when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds with torch already imported (spawn re-imports it,
    # ~3 s); workers never touch CUDA, which is what makes fork unsafe.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class Workers:
    """``workers`` processes (started on first use), or none when ``workers <= 1``: then
    tasks run in this process, which is simplest to debug. Use as a context manager."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _submit(self, fn: Callable[..., R], task: tuple[Any, ...]) -> Future[R]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context(),
                                             initializer=_worker_init,
                                             initargs=(os.getpid(),))
            with _signals_deferred():  # the first submit forks every worker
                return self._pool.submit(fn, *task)
        return self._pool.submit(fn, *task)

    def map(self, fn: Callable[..., R], tasks: Iterable[tuple[Any, ...]],
            window: int | None = None) -> Iterator[R]:
        """Yield ``fn(*task)`` for each task, in order, at most ``window`` (default
        ``2 * workers``) in flight. Closing the iterator early (an exception or Ctrl-C in
        the consumer) cancels the tasks not yet started."""
        if self.workers <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as in a worker: per-file tensors are too small to split
            try:
                for task in tasks:
                    yield fn(*task)
            finally:
                torch.set_num_threads(threads)
            return
        window = window or 2 * self.workers
        pending: deque[Future[R]] = deque()
        try:
            for task in tasks:
                pending.append(self._submit(fn, task))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
