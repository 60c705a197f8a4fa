"""Faults of the machine: hard kills, a full or failing disk, two writers on one folder.

* SIGKILL at chosen points of ``build`` and ``train`` (a wrapper process stops itself at
  the point and waits; the test kills it there): no worker survives, ``info``/``--resume``
  tell the truth, and a rerun or resume gives what an uninterrupted run gives.
* ENOSPC and EIO injected at every write site: writes to the file the site writes fail
  (``os.write``, through which :mod:`leakhunter.safe_write` writes every whole file, and
  files opened with ``Path.open``); HDF5 and the ONNX exporter write from C, so their
  calls are made to fail as they fail. One line, no temporary file left, earlier files
  intact.
* Two writers on one folder; readers of a checkpoint being replaced; input files that
  vanish or shrink between the scan and the read.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest
import torch

from leakhunter.cli import main
from leakhunter.dataset import build as build_module
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.model import checkpoint
from leakhunter.runtime import locks, parallel, safe_write

SMALL = ["--width", "8", "--dense", "32", "--batch-size", "32", "--log-every", "2"]
# read from disk by two DataLoader workers, so that a kill mid-epoch has workers to orphan
TRAIN = [*SMALL, "--epochs", "2", "--patience", "50", "--preload", "no",
         "--loader-workers", "2"]
REASON = {errno.ENOSPC: "No space left on device", errno.EIO: "Input/output error"}
TEMP_PATTERNS = ("*.tmp", "*.partial", ".*.part")

# Runs the CLI with one function wrapped so that, at the chosen point, the process writes
# its PID to MARKER and waits until MARKER.go exists (the test kills it meanwhile, or lets
# it go on).
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


def _start_held(tmp_path: Path, point: str, *argv: str) -> tuple[subprocess.Popen, Path]:
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


def _kill_and_check_orphans(proc: subprocess.Popen) -> int:
    """SIGKILL ``proc``; assert every process it started ends within 2 s; returns how many
    it had."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    deadline = time.monotonic() + 2.0
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [c for c in alive if _running(c)]
        time.sleep(0.02)
    for c in alive:  # do not leave them to the next test
        c.kill()
    assert not alive, f"orphaned workers still running: {[c.pid for c in alive]}"
    return len(children)


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # a zombie has ended; init reaps it
    except psutil.NoSuchProcess:
        return False


def _temps(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for pattern in TEMP_PATTERNS
                  for p in folder.rglob(pattern))


def _same_dataset(a: Path, b: Path) -> None:
    for name in SPLIT_FILES.values():
        with h5py.File(a / name, "r") as fa, h5py.File(b / name, "r") as fb:
            np.testing.assert_array_equal(fa["mel"][()], fb["mel"][()])
            np.testing.assert_array_equal(fa["files/path"][()], fb["files/path"][()])
            np.testing.assert_array_equal(fa["label"][()], fb["label"][()])


def _same_model(a: Path, b: Path) -> None:
    sa = checkpoint.load(a / "checkpoints" / "last.pt", "train-state")
    sb = checkpoint.load(b / "checkpoints" / "last.pt", "train-state")
    assert sa["epoch"] == sb["epoch"] and sa["step"] == sb["step"]
    for name, tensor in sa["model"].items():
        torch.testing.assert_close(sb["model"][name], tensor, rtol=0, atol=1e-6, msg=name)


def _one_line(err: str, *parts: str) -> None:
    """The error is one line, the last (warnings logged before it may precede it)."""
    assert err.endswith("\n") and err.count("leakhunter: error: ") == 1, err
    line = err.splitlines()[-1]
    assert line.startswith("leakhunter: error: ") and "Traceback" not in err, err
    for part in parts:
        assert part in line, (part, line)


# --- no orphans -----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("point,workers_expected", [("spool", 2), ("splits", 0)])
def test_build_killed_leaves_no_worker_and_reruns_to_the_same_dataset(
        recordings: Path, dataset: Path, tmp_path: Path, point: str,
        workers_expected: int) -> None:
    out = tmp_path / "out"
    proc, _ = _start_held(tmp_path, point, "build", str(recordings), "--out", str(out),
                          "--workers", "2", "--files-per-task", "1")
    assert _kill_and_check_orphans(proc) >= workers_expected
    assert main(["info", str(out)]) == 1  # not a finished dataset, and info says so
    assert not (out / "build_report.json").exists()
    # the dead process's lock went with it; the rerun clears its partial files
    assert main(["-q", "build", str(recordings), "--out", str(out), "--workers", "2"]) == 0
    assert main(["-q", "info", str(out)]) == 0 and _temps(out) == []
    _same_dataset(dataset, out)


@pytest.fixture(scope="module")
def straight_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs without interruption, as the killed runs are configured."""
    run = tmp_path_factory.mktemp("straight") / "run"
    assert main(["-q", "train", str(dataset), "--out", str(run), *TRAIN]) == 0
    return run


@pytest.mark.slow
@pytest.mark.parametrize("point,workers_expected", [
    ("mid-epoch", 2),  # before the checkpoint write: DataLoader workers are running
    ("checkpoint-write", 0),  # half of last.pt.tmp written
    ("after-checkpoint", 0),  # last.pt replaced, nothing else yet
])
def test_train_killed_resumes_to_the_uninterrupted_result(
        dataset: Path, straight_run: Path, tmp_path: Path, point: str,
        workers_expected: int) -> None:
    run = tmp_path / "run"
    proc, _ = _start_held(tmp_path, point, "train", str(dataset), "--out", str(run), *TRAIN)
    assert _kill_and_check_orphans(proc) >= workers_expected
    state = checkpoint.load(run / "checkpoints" / "last.pt", "train-state")
    assert state["epoch"] == 1 and state["batch"] == 0  # the last complete checkpoint
    assert main(["-q", "train", "--resume", str(run)]) == 0
    _same_model(straight_run, run)
    assert _temps(run) == []


def test_worker_without_a_parent_death_signal_ends_by_its_watchdog(tmp_path: Path) -> None:
    """Where the OS has no parent-death signal, the watchdog thread ends the worker."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent('''
        import os, sys, time
        from leakhunter.runtime import parallel
        parallel._set_parent_death_signal = lambda: False  # as on macOS or Windows
        parent = os.getpid()
        child = os.fork()
        if child == 0:
            parallel.die_with_parent(parent)
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
        time.sleep(60)
    '''))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(proc.stdout.readline()))
    time.sleep(0.2)
    assert _running(child)
    assert _kill_and_check_orphans(proc) == 1


def test_worker_whose_parent_died_before_it_armed_leaves_at_once() -> None:
    """The race: the parent died between fork() and prctl(); getppid() tells."""
    pid = os.fork()
    if pid == 0:
        try:
            parallel.die_with_parent(os.getppid() + 10**6)  # "my parent is already gone"
        finally:
            os._exit(0)  # only reached if die_with_parent did not exit
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1


# --- full disk and I/O errors at every write site -------------------------------------------

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


def _fail_writes(monkeypatch: pytest.MonkeyPatch, pattern: str, number: int,
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


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EIO])
@pytest.mark.parametrize("pattern,what", [
    ("features.spool.partial", "writing the features spool"),
    ("labels.json.partial", "writing labels.json"),
    ("build_report.json.partial", "writing build_report.json"),
])
def test_build_write_failures_are_one_line(recordings: Path, tmp_path: Path, capsys,
                                           monkeypatch: pytest.MonkeyPatch, pattern: str,
                                           what: str, number: int) -> None:
    out = tmp_path / "out"
    _fail_writes(monkeypatch, pattern, number)
    assert main(["-q", "build", str(recordings), "--out", str(out), "--workers", "1"]) == 1
    _one_line(capsys.readouterr().err, pattern.replace(".partial", ""), what, REASON[number])
    assert _temps(out) == [] and not (out / "build_report.json").exists()
    monkeypatch.undo()
    assert main(["info", str(out)]) == 1  # no build_report.json: unfinished, and said so
    assert main(["-q", "build", str(recordings), "--out", str(out), "--workers", "1",
                 "--overwrite"]) == 0


def test_spool_failure_reports_the_space_needed(recordings: Path, tmp_path: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_writes(monkeypatch, "features.spool.partial", errno.ENOSPC, after=50_000)
    assert main(["-q", "build", str(recordings), "--out", str(tmp_path / "o"),
                 "--workers", "1"]) == 1
    err = capsys.readouterr().err
    _one_line(err, "[ENOSPC]", "(needed more than ", " kB, ", " free)")


def test_hdf5_write_failure_is_one_line_and_the_old_dataset_survives(
        dataset: Path, recordings: Path, tmp_path: Path, capsys,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    shutil.copytree(dataset, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(self, *args, **kwargs):  # what h5py raises when HDF5's write() fails
        raise RuntimeError("Can't write data (file write failed: time = now, filename = "
                           "'x', file descriptor = 6, errno = 5, error message = "
                           "'Input/output error', buf = 0x1, total write size = 4096)")

    monkeypatch.setattr(h5py.Dataset, "__setitem__", fail)
    assert main(["-q", "build", str(recordings), "--out", str(out), "--overwrite",
                 "--workers", "1"]) == 1
    _one_line(capsys.readouterr().err, str(out), "writing the split files",
              "Input/output error [EIO]")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_too_little_space_for_the_split_files_is_refused_before_writing(
        recordings: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(safe_write.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=100_000))
    out = tmp_path / "out"
    assert main(["-q", "build", str(recordings), "--out", str(out), "--workers", "1"]) == 1
    _one_line(capsys.readouterr().err, "writing the split files", "[ENOSPC]",
              "needed about", "100 kB free")
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def one_epoch(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("one") / "run"
    assert main(["-q", "train", str(dataset), "--out", str(run), *SMALL, "--epochs", "1"]) == 0
    return run


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EIO])
def test_failed_checkpoint_write_keeps_the_previous_and_resume_continues(
        one_epoch: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch,
        number: int) -> None:
    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    _fail_writes(monkeypatch, "last.pt.tmp", number)
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2"]) == 1
    _one_line(capsys.readouterr().err, str(last), "writing the checkpoint", REASON[number],
              "needed ")
    assert last.read_bytes() == before and _temps(run) == []
    monkeypatch.undo()
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2"]) == 0
    assert checkpoint.load(last, "train-state")["epoch"] == 2


@pytest.mark.parametrize("pattern", ["config.json.tmp", "best.pt.tmp", "model_meta.json.tmp",
                                     "metrics.csv.tmp", ".curves.png.tmp"])
def test_train_write_failures_are_one_line(dataset: Path, tmp_path: Path, capsys,
                                           monkeypatch: pytest.MonkeyPatch,
                                           pattern: str) -> None:
    run = tmp_path / "run"
    _fail_writes(monkeypatch, pattern, errno.ENOSPC)
    assert main(["-q", "train", str(dataset), "--out", str(run), *SMALL, "--epochs", "1"]) == 1
    _one_line(capsys.readouterr().err, pattern.strip(".").replace(".tmp", ""),
              REASON[errno.ENOSPC])
    assert _temps(run) == []


def test_failing_log_file_warns_once_and_training_goes_on(
        dataset: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from leakhunter.runtime import log

    def flush(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(log._LogFileHandler, "flush", flush)
    assert main(["train", str(dataset), "--out", str(tmp_path / "run"), *SMALL,
                 "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("writing the log failed (No space left on device)") == 1
    assert "Logging error" not in err and "Traceback" not in err


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


@pytest.mark.parametrize("pattern", ["predictions.csv.tmp", "segments.csv.tmp",
                                     "report.json.tmp", ".roc.png.tmp"])
def test_evaluate_write_failures_keep_the_model(run_copy: Path, dataset: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch,
                                                pattern: str) -> None:
    model = run_copy / "best.pt"
    before = model.read_bytes()
    _fail_writes(monkeypatch, pattern, errno.EIO)
    assert main(["-q", "evaluate", str(model), str(dataset), "--segments"]) == 1
    _one_line(capsys.readouterr().err, pattern.strip(".").replace(".tmp", ""),
              REASON[errno.EIO])
    assert model.read_bytes() == before and _temps(run_copy) == []


@pytest.mark.parametrize("pattern", ["decisions.csv.tmp", "decisions_segments.csv.tmp"])
def test_predict_write_failures_are_one_line(run_copy: Path, recordings: Path, tmp_path: Path,
                                             capsys, monkeypatch: pytest.MonkeyPatch,
                                             pattern: str) -> None:
    out = tmp_path / "pred" / "decisions.csv"
    _fail_writes(monkeypatch, pattern, errno.ENOSPC)
    assert main(["-q", "predict", str(run_copy / "best.pt"), str(recordings / "LEAK"),
                 "--out", str(out), "--segments", "--workers", "1"]) == 1
    _one_line(capsys.readouterr().err, pattern.replace(".tmp", ""), REASON[errno.ENOSPC])
    assert _temps(tmp_path / "pred") == []


def test_export_write_failures_leave_nothing(run_copy: Path, tmp_path: Path, capsys,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from leakhunter.model import export

    out = tmp_path / "onnx" / "leak.onnx"

    def full_disk(wrapper, segment_samples, path):  # the exporter writes from C++
        Path(path).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(export, "_export_graph", full_disk)
    assert main(["-q", "export", str(run_copy / "best.pt"), "--out", str(out)]) == 1
    _one_line(capsys.readouterr().err, str(out), "writing the ONNX model",
              REASON[errno.ENOSPC])
    assert list(out.parent.iterdir()) == []
    monkeypatch.undo()
    _fail_writes(monkeypatch, "model_card.json.tmp", errno.ENOSPC)
    assert main(["-q", "export", str(run_copy / "best.pt"), "--out", str(out)]) == 1
    _one_line(capsys.readouterr().err, "model_card.json", REASON[errno.ENOSPC])
    assert _temps(out.parent) == []


def test_synth_write_failure_is_one_line(tmp_path: Path, capsys,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from leakhunter.recordings.synth import synth

    def full_disk(path, *args, **kwargs):  # libsndfile writes from C
        Path(path).write_bytes(b"RIFF half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(synth.sf, "write", full_disk)
    assert main(["synth", str(tmp_path / "rec"), "--count", "2", "--duration", "1"]) == 1
    _one_line(capsys.readouterr().err, "writing a recording", REASON[errno.ENOSPC])
    assert _temps(tmp_path / "rec") == []


def test_unexpected_os_error_is_still_one_line(tmp_path: Path, capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "x"))

    monkeypatch.setattr(build_module, "discover", broken)
    assert main(["build", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    _one_line(capsys.readouterr().err, str(tmp_path / "x"), "Permission denied [EACCES]")


# --- one writer per folder ------------------------------------------------------------------

def test_second_build_into_one_folder_is_refused_and_the_first_finishes(
        recordings: Path, dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    proc, marker = _start_held(tmp_path, "splits", "build", str(recordings), "--out",
                               str(out), "--workers", "1")
    try:
        assert main(["build", str(recordings), "--out", str(out), "--overwrite",
                     "--workers", "1"]) == 1
        _one_line(capsys.readouterr().err, str(out), f"in use by PID {proc.pid}", "build",
                  "wait for it to finish")
        holder = json.loads((out / locks.LOCK_FILE).read_text())
        assert holder["pid"] == proc.pid and "--out" in holder["command"]
    finally:
        marker.with_suffix(".go").touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _same_dataset(dataset, out)
    assert not (out / locks.LOCK_FILE).exists()  # released and removed


def test_second_trainer_on_a_run_is_refused_and_readers_go_on(
        one_epoch: Path, dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from leakhunter.runtime import locks\n"
         f"with locks.folder_lock({str(run)!r}, 'leakhunter train ds --out run'):\n"
         "    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        for argv in (["train", "--resume", str(run)],
                     ["train", str(dataset), "--out", str(run), "--overwrite"]):
            assert main(argv) == 1
            _one_line(capsys.readouterr().err, f"in use by PID {holder.pid}",
                      "'leakhunter train ds --out run'")
        # readers take no lock: the model still loads while the run is held
        assert checkpoint.load(run / "best.pt", "model")["kind"] == "model"
    finally:
        holder.communicate("", timeout=30)
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2"]) == 0


def test_lock_is_reentrant_and_refuses_a_file(tmp_path: Path) -> None:
    with locks.folder_lock(tmp_path / "a", "x"):
        with locks.folder_lock(tmp_path / "a", "x"):
            assert (tmp_path / "a" / locks.LOCK_FILE).exists()
        assert (tmp_path / "a" / locks.LOCK_FILE).exists()  # still held by the outer
    assert not (tmp_path / "a" / locks.LOCK_FILE).exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(locks.InputError, match="not a folder"):
        with locks.folder_lock(tmp_path / "f"):
            pass


def test_reader_never_sees_a_half_written_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    states = [{"kind": "model", "model": {"w": torch.full((20_000,), float(i))}, "i": i}
              for i in range(2)]
    checkpoint.save(path, states[0])
    failures: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                state = checkpoint.load(path, "model")
                assert float(state["model"]["w"][0]) == state["i"]
            except Exception as exc:  # any torn read is a failure
                failures.append(repr(exc))

    reader = threading.Thread(target=read)
    reader.start()
    for k in range(40):
        checkpoint.save(path, states[k % 2])
    done.set()
    reader.join()
    assert failures == []


# --- input that changes under the build -----------------------------------------------------

def test_input_deleted_or_truncated_after_the_scan_is_skipped(
        recordings_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wavs = sorted((recordings_copy / "LEAK").glob("*.wav"))
    gone, cut = wavs[1], wavs[2]
    real = build_module.discover

    def discover_then_damage(*args, **kwargs):
        found = real(*args, **kwargs)  # both files are listed ...
        gone.unlink()  # ... then one disappears and one is cut short mid-write
        with cut.open("r+b") as fh:
            fh.truncate(30)
        return found

    monkeypatch.setattr(build_module, "discover", discover_then_damage)
    out = tmp_path / "out"
    assert main(["-q", "build", str(recordings_copy), "--out", str(out), "--workers", "2"]) == 0
    report = json.loads((out / "build_report.json").read_text())
    skipped = {item["path"]: item["reason"] for item in report["skipped"]}
    assert set(skipped) == {str(gone), str(cut)}
    assert all(reason for reason in skipped.values())
    assert main(["-q", "info", str(out)]) == 0
