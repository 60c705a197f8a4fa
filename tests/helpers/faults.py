"""Faults of the machine, made on purpose: hard kills, a full or failing disk.

* SIGKILL at chosen points of ``build`` and ``train``: :func:`start_held` runs the CLI in
  the :data:`KILLABLE` wrapper process, which stops itself at the point and waits; the
  test kills it there with :func:`kill_and_check_orphans` (no worker may survive), or lets
  it go on by creating ``MARKER.go``.
* ENOSPC and EIO injected at a write site with :func:`fail_writes`: writes to the file
  the site writes fail (``os.write``, through which :mod:`leakhunter.runtime.safe_write`
  writes every whole file, and files opened with ``Path.open``). HDF5, libsndfile and the
  ONNX exporter write from C, so the tests make their calls fail as they fail.
* What every such failure must leave: one error line (:func:`one_line`), the reason as
  the OS words it (:data:`REASON`), and no temporary file (:func:`temps`).

Used by the fault tests of build (tests/dataset/test_build.py), train
(tests/training/test_train.py), the worker pool (tests/runtime/test_parallel.py) and the
writers of evaluate, predict, export, synth and the CLI.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import psutil

REASON = {errno.ENOSPC: "No space left on device", errno.EIO: "Input/output error"}
"""How each injected error number reads in an error line."""

TEMP_PATTERNS = ("*.tmp", "*.partial", ".*.part")
"""The names of leakhunter's temporary files; none may be left after a failure."""

KILLABLE = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    marker, point, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]

    def hold():
        marker.write_text(str(os.getpid()))
        while not marker.with_suffix(".go").exists():
            time.sleep(0.02)

    def name(fd):
        return os.readlink(f"/proc/self/fd/{fd}")

    from leakhunter.dataset import store
    from leakhunter.model import checkpoint
    from leakhunter.runtime import parallel, safe_write
    from leakhunter.training import trainer
    real_map, real_write_all, real_save = parallel.Workers.map, safe_write.write_all, \
        checkpoint.save
    real_append, real_loss = store.SplitWriter.append, trainer.Trainer._loss
    seen = {"n": 0}

    def map_(self, fn, tasks, window=None):  # the features pass, workers busy
        for i, result in enumerate(real_map(self, fn, tasks, window)):
            if point == "spool" and i == 1:
                hold()
            yield result

    def write_all(fd, data):
        if point == "checkpoint-write" and name(fd).endswith("last.pt.tmp"):
            seen["n"] += 1
            if seen["n"] == 2:  # the end of epoch 2: half of last.pt, then killed
                data = memoryview(data).cast("B")
                real_write_all(fd, data[: len(data) // 2])
                hold()
        real_write_all(fd, data)

    def append(self, *args, **kwargs):
        seen["n"] += 1
        if point == "splits" and seen["n"] == 3:
            hold()
        return real_append(self, *args, **kwargs)

    def loss(self, *args, **kwargs):
        if point == "mid-epoch" and self.epoch == 1 and self.batch == 1:
            hold()
        return real_loss(self, *args, **kwargs)

    def save(path, state):
        real_save(path, state)
        if point == "after-checkpoint" and Path(path).name == "last.pt":
            hold()

    parallel.Workers.map, safe_write.write_all, checkpoint.save = map_, write_all, save
    store.SplitWriter.append, trainer.Trainer._loss = append, loss
    from leakhunter.cli import main
    sys.exit(main(argv))
''')
"""A script that runs the CLI with one function wrapped so that, at the chosen point, the
process writes its PID to MARKER and waits until MARKER.go exists (the test kills it
meanwhile, or lets it go on). Arguments: MARKER, the point, the CLI's arguments. Points:
``spool`` (build's features pass, second result, workers busy), ``splits`` (build's third
append to a split file), ``mid-epoch`` (train, epoch 1, batch 1), ``checkpoint-write``
(train, half of the epoch-2 ``last.pt.tmp`` written), ``after-checkpoint`` (train, just
after ``last.pt`` is replaced)."""


def start_held(tmp_path: Path, point: str, *argv: str) -> tuple[subprocess.Popen, Path]:
    """Start the CLI in the killable wrapper; return once it waits at ``point``."""
    script, marker = tmp_path / "killable.py", tmp_path / f"{point}.marker"
    script.write_text(KILLABLE)
    proc = subprocess.Popen([sys.executable, str(script), str(marker), point, "-q", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached " + point
        time.sleep(0.02)
    return proc, marker


def kill_and_check_orphans(proc: subprocess.Popen) -> int:
    """SIGKILL ``proc``; assert every process it started ends within 2 s; returns how many
    it had."""
    import psutil  # here, not at the top: the GPU check's machine collects these files

    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    deadline = time.monotonic() + 2.0
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [c for c in alive if is_running(c)]
        time.sleep(0.02)
    for c in alive:  # do not leave them to the next test
        c.kill()
    assert not alive, f"orphaned workers still running: {[c.pid for c in alive]}"
    return len(children)


def is_running(p: psutil.Process) -> bool:
    """Whether ``p`` still runs (a zombie has ended; init reaps it)."""
    import psutil

    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def temps(folder: Path) -> list[str]:
    """The temporary files (:data:`TEMP_PATTERNS`) under ``folder``, relative to it."""
    return sorted(str(p.relative_to(folder)) for pattern in TEMP_PATTERNS
                  for p in folder.rglob(pattern))


def one_line(err: str, *parts: str) -> None:
    """The error is one line, the last (warnings logged before it may precede it), and
    holds each of ``parts``."""
    assert err.endswith("\n") and err.count("leakhunter: error: ") == 1, err
    line = err.splitlines()[-1]
    assert line.startswith("leakhunter: error: ") and "Traceback" not in err, err
    for part in parts:
        assert part in line, (part, line)


class _FailingFile:
    """A file opened for writing whose writes fail once ``after`` bytes are written."""

    def __init__(self, fh, number: int, after: int):
        self._fh, self._number, self._left = fh, number, after

    def write(self, data) -> int:
        n = len(data) if isinstance(data, str) else memoryview(data).nbytes
        if n > self._left:
            raise OSError(self._number, os.strerror(self._number))
        self._left -= n
        return self._fh.write(data)

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def fail_writes(monkeypatch: pytest.MonkeyPatch, pattern: str, number: int,
                after: int = 0) -> None:
    """Make writes to files whose name matches ``pattern`` fail with ``number`` (after the
    first ``after`` bytes of a file opened with ``Path.open``)."""
    real_write, real_open = os.write, Path.open

    def write(fd: int, data: bytes) -> int:
        try:
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            name = ""
        if fnmatch.fnmatch(name, pattern):
            raise OSError(number, os.strerror(number))
        return real_write(fd, data)

    def open_(self: Path, mode: str = "r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        if set(mode) & set("wax+") and fnmatch.fnmatch(self.name, pattern):
            return _FailingFile(fh, number, after)
        return fh

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(Path, "open", open_)
