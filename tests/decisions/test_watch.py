"""Daily operations: `predict --resume` after a hard kill, torn rows, a changed model
refused, and `predict --watch` judging each upload once, only when it is complete."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from leakhunter.cli import main
from leakhunter.config import SynthConfig
from leakhunter.decisions.watch import FolderWatcher
from leakhunter.recordings.synth.synth import synthesize

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "leakhunter", "-q", *args]


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 one-second recordings: long enough a run to be killed in the middle."""
    root = tmp_path_factory.mktemp("many") / "rec"
    synthesize(root, SynthConfig(count=120, duration_s=1.0, sensors_per_label=6, seed=3))
    return root


def test_resume_after_sigkill_gives_the_rows_of_one_run(many: Path, trained_run: Path,
                                                        tmp_path: Path) -> None:
    model = str(trained_run / "best.pt")
    ref, out = tmp_path / "ref.csv", tmp_path / "results.csv"
    assert main(["-q", "predict", model, str(many), "--out", str(ref), "--workers", "1"]) == 0
    total = len(_rows(ref))

    proc = subprocess.Popen(_cli("predict", model, str(many), "--out", str(out), "--resume",
                                 "--workers", "1"), env=ENV, stderr=subprocess.PIPE)
    _wait_for(lambda: out.exists() and out.read_bytes().count(b"\n") >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    at_kill = len(_rows(out))
    assert 0 < at_kill < total, "the kill should land in the middle of the run"

    assert main(["-q", "predict", model, str(many), "--out", str(out), "--resume",
                 "--workers", "1"]) == 0
    got = _rows(out)
    assert len(got) == total and len({r["path"] for r in got}) == total  # no duplicate
    assert sorted(got, key=lambda r: r["path"]) == sorted(_rows(ref), key=lambda r: r["path"])


def test_a_torn_last_row_is_cut_and_judged_again(recordings: Path, trained_run: Path,
                                                 tmp_path: Path) -> None:
    model, out = str(trained_run / "best.pt"), tmp_path / "results.csv"
    argv = ["-q", "predict", model, str(recordings), "--out", str(out), "--resume"]
    assert main(argv) == 0
    whole = _rows(out)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-2]) + lines[-2][:15])  # killed while writing a row
    assert main(argv) == 0
    assert _rows(out) == whole[:-2] + whole[-2:]  # the last two judged again, in order


def test_another_model_or_rule_is_refused(recordings: Path, trained_run: Path,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    model, out = str(trained_run / "best.pt"), tmp_path / "results.csv"
    assert main(["-q", "predict", model, str(recordings), "--out", str(out), "--resume"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    other = tmp_path / "other.pt"
    other.write_bytes((trained_run / "best.pt").read_bytes() + b"")  # same bytes: accepted
    assert main(["-q", "predict", str(other), str(recordings), "--out", str(out),
                 "--resume"]) == 0
    assert main(["-q", "predict", model, str(recordings), "--out", str(out), "--resume",
                 "--threshold", "0.3"]) == 1
    err = capsys.readouterr().err
    assert "written with another model or decision rule (threshold" in err
    assert err.count("\n") == 1 and out.read_bytes() == before
    (out.with_suffix(".info.json")).unlink()
    assert main(["-q", "predict", model, str(recordings), "--out", str(out), "--resume"]) == 1
    assert "says which model and rule wrote its rows" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--segments"], ["--format", "json"]])
def test_resume_needs_a_plain_csv(recordings: Path, trained_run: Path, tmp_path: Path,
                                  extra: list[str],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "predict", str(trained_run / "best.pt"), str(recordings), "--out",
                 str(tmp_path / "r.csv"), "--resume", *extra]) == 1
    assert "append rows to a CSV file" in capsys.readouterr().err


def test_a_growing_file_is_released_only_once_settled(tmp_path: Path) -> None:
    with FolderWatcher([tmp_path], settle_s=1.0) as watcher:
        growing = tmp_path / "a.wav"
        growing.write_bytes(b"x" * 100)
        watcher.nominate(growing)
        (tmp_path / ".hidden.wav").write_bytes(b"x")
        watcher.nominate(tmp_path / ".hidden.wav")  # a name that marks it unfinished
        assert watcher.ready() == []
        time.sleep(0.5)
        with growing.open("ab") as fh:
            fh.write(b"y" * 100)
        last_change = time.monotonic()
        released = []
        _wait_for(lambda: released.extend(watcher.ready()) or released, timeout=30)
        assert released == [growing]
        assert time.monotonic() - last_change >= 1.0  # the wait started again at the change
        assert watcher.ready() == []  # released once


class _Watching:
    """``predict --watch`` in a subprocess whose log lines are read as they come, so a test
    waits for what the watcher says it did, not for a guessed time."""

    def __init__(self, argv: list[str]):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> str:
        """SIGTERM, then the process's standard output once it has ended."""
        self.proc.send_signal(signal.SIGTERM)
        stdout, _ = self.proc.communicate(timeout=60)
        self.reader.join(timeout=10)
        return stdout


def test_watch_judges_each_upload_once_when_complete(recordings: Path, trained_run: Path,
                                                     tmp_path: Path) -> None:
    model, inbox, out = str(trained_run / "best.pt"), tmp_path / "inbox", tmp_path / "w.csv"
    inbox.mkdir()
    sources = sorted(recordings.rglob("*~*~*~[2-9]*.wav"))[:3]  # gain above 1 dB: judged
    (inbox / "old.wav").write_bytes(sources[0].read_bytes())  # there before the watch
    os.utime(inbox / "old.wav", (time.time() - 60, time.time() - 60))
    argv = [sys.executable, "-m", "leakhunter", "predict", model, str(inbox), "--out",
            str(out), "--watch", "--settle", "0.5", "--workers", "1"]
    watching = _Watching(argv)
    try:
        _wait_for(lambda: watching.said("; 1 in "))  # "judged 1 new recording(s); 1 in ..."
        # a slow upload: half the file, a pause shorter than --settle, the rest
        data = sources[1].read_bytes()
        with (inbox / "slow.wav").open("wb") as fh:
            fh.write(data[:len(data) // 2])
            fh.flush()
            time.sleep(0.3)
            fh.write(data[len(data) // 2:])
        # an upload renamed into place
        (inbox / "fast.wav.part").write_bytes(sources[2].read_bytes())
        (inbox / "fast.wav.part").rename(inbox / "fast.wav")
        _wait_for(lambda: watching.said("; 3 in "))
    finally:
        stdout = watching.stop()
    assert watching.proc.returncode == 0, "".join(watching.lines)
    assert "stopped watching: 3 recording(s) judged in this run" in stdout
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    assert sorted(rows) == ["fast.wav", "old.wav", "slow.wav"] and len(_rows(out)) == 3
    full = sf.info(str(sources[1])).duration  # judged whole, not half-written
    assert float(rows["slow.wav"]["duration_s"]) == pytest.approx(full, abs=1e-3)
    assert all(r["status"] == "ok" and r["decision"] for r in rows.values())

    # restarted: it resumes, and its start-up scan finds nothing to judge or wait for
    watching = _Watching(argv)
    try:
        _wait_for(lambda: watching.said("3 recording(s) already judged, 0 waiting to be "
                                        "judged, 0 still changing"))
    finally:
        stdout = watching.stop()
    assert "stopped watching: 0 recording(s) judged in this run, 3 in" in stdout
    assert len(_rows(out)) == 3
    shutil.rmtree(inbox)


def test_a_second_writer_of_the_results_is_refused(recordings: Path, trained_run: Path,
                                                   tmp_path: Path) -> None:
    from leakhunter.decisions.predict import Predictor
    from leakhunter.decisions.predictions_file import predictions_info
    from leakhunter.decisions.results_log import ResultsLog

    out = tmp_path / "results.csv"
    info = predictions_info(out, Predictor(trained_run / "best.pt", workers=1))
    with ResultsLog(out, info):
        proc = subprocess.run(_cli("predict", str(trained_run / "best.pt"), str(recordings),
                                   "--out", str(out), "--resume"), env=ENV,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and "in use by PID" in proc.stderr
        assert proc.stderr.count("\n") == 1
    with ResultsLog(out, info) as again:  # released with the first
        assert again.existing == 0
