"""Daily operations: `predict --resume` after a hard kill, torn rows, a changed model
refused, and `predict --watch` judging each upload once, only when it is complete."""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.cli import main
from leakhunter.config import SynthConfig
from leakhunter.decisions.watch import FolderWatcher, judge_new
from leakhunter.errors import ConfigError
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


@pytest.mark.parametrize("flags,message", [
    (["--settle", "-1"], "--settle must be non-negative"),
    (["--poll", "0"], "--poll must be positive"),
    (["--max-wait", "-1"], "--max-wait must be non-negative"),
])
def test_meaningless_timings_are_one_line(tmp_path: Path, flags: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before the model is read or the results file is made; the library's
    watcher refuses them too."""
    out = tmp_path / "r.csv"
    assert main(["-q", "predict", str(tmp_path / "best.pt"), str(tmp_path), "--out", str(out),
                 "--watch", *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(ConfigError, match=message):
        FolderWatcher([tmp_path], **{flags[0][2:].replace("-", "_") + "_s": float(flags[1])})


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


def _wav_bytes(seconds: float, seed: int = 0) -> bytes:
    """A whole 16-bit WAV file of noise at 4096 Hz, header first."""
    buffer = io.BytesIO()
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 4096))
    sf.write(buffer, x.astype(np.float32), 4096, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_a_slow_upload_is_released_only_when_whole(tmp_path: Path) -> None:
    """Chunks with pauses longer than --settle: the header says more is coming, so the file
    waits; the last chunk makes it whole and it is released once."""
    data, path = _wav_bytes(2.0), tmp_path / "slow.wav"
    chunks = [data[i:i + len(data) // 4] for i in range(0, len(data), len(data) // 4)]
    with FolderWatcher([tmp_path], settle_s=0.1, max_wait_s=60) as watcher:
        with path.open("wb") as fh:
            for chunk in chunks[:-1]:
                fh.write(chunk)
                fh.flush()
                watcher.nominate(path)
                settled = time.monotonic() + 0.3  # three times --settle without a change
                while time.monotonic() < settled:
                    assert watcher.ready() == [], "released before it was whole"
                    time.sleep(0.02)
            fh.write(b"".join(chunks[-1:]))
        watcher.nominate(path)
        released: list[Path] = []
        _wait_for(lambda: released.extend(watcher.ready()) or released, timeout=30)
        assert released == [path] and watcher.ready() == []


def test_a_cut_upload_is_released_after_max_wait(tmp_path: Path, caplog) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav_bytes(2.0)[:3000])
    with FolderWatcher([tmp_path], settle_s=0.05, max_wait_s=0.5) as watcher:
        watcher.nominate(path)
        start = time.monotonic()
        released: list[Path] = []
        _wait_for(lambda: released.extend(watcher.ready()) or released, timeout=30)
        assert released == [path] and time.monotonic() - start >= 0.5
    assert "has not changed for 0.5 s (--max-wait); judged as it is" in caplog.text


def test_a_rejudged_recording_keeps_its_newer_row_only(trained_run: Path, tmp_path: Path
                                                       ) -> None:
    from leakhunter.decisions.predict import Predictor
    from leakhunter.decisions.predictions_file import predictions_info
    from leakhunter.decisions.results_log import ResultsLog

    out, inbox = tmp_path / "results.csv", tmp_path / "in"
    inbox.mkdir()
    for name, seconds in (("a.wav", 1.0), ("b.wav", 1.0)):
        (inbox / name).write_bytes(_wav_bytes(seconds))
    predictor = Predictor(trained_run / "best.pt", workers=1)
    info = predictions_info(out, predictor)
    columns = info["identity"]["columns"]
    with ResultsLog(out, info) as results:
        assert judge_new(predictor, sorted(inbox.iterdir()), results, columns) == 2
        (inbox / "a.wav").write_bytes(_wav_bytes(3.0, seed=1))  # rewritten after judging
        assert judge_new(predictor, [inbox / "a.wav"], results, columns) == 0  # done
        assert judge_new(predictor, [inbox / "a.wav"], results, columns,
                         again=[inbox / "a.wav"]) == 1
        assert results.rows == 2 and results.dropped == 1
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    assert len(_rows(out)) == 2 and float(rows["a.wav"]["duration_s"]) == pytest.approx(3.0)
    # a run stopped between appending a re-judged row and compacting: the next open keeps
    # the newer row
    with out.open("a", newline="") as fh:
        csv.writer(fh).writerow([rows["b.wav"][c] if c != "duration_s" else "9.0"
                                 for c in columns])
    with ResultsLog(out, info) as results:
        assert results.existing == 2 and results.rows == 2
    assert float({Path(r["path"]).name: r for r in _rows(out)}["b.wav"]["duration_s"]) == 9.0


def test_watch_waits_for_slow_uploads_and_judges_changed_files_again(
        trained_run: Path, tmp_path: Path) -> None:
    """--watch on an empty folder: a recording arriving in chunks with pauses longer than
    --settle is judged once, whole; one cut off is judged truncated after --max-wait, and
    judged again, whole, once the rest arrives; the results keep one row per recording."""
    model, inbox, out = str(trained_run / "best.pt"), tmp_path / "inbox", tmp_path / "w.csv"
    inbox.mkdir()
    argv = [sys.executable, "-m", "leakhunter", "predict", model, str(inbox), "--out",
            str(out), "--watch", "--settle", "0.2", "--max-wait", "1.5", "--workers", "1"]
    watching = _Watching(argv)
    slow, cut = _wav_bytes(4.0), _wav_bytes(3.0, seed=2)
    try:
        _wait_for(lambda: watching.said("watching"))
        with (inbox / "slow.wav").open("wb") as fh:  # four chunks, 0.6 s apart
            for i in range(4):
                fh.write(slow[i * len(slow) // 4:(i + 1) * len(slow) // 4])
                fh.flush()
                time.sleep(0.6 if i < 3 else 0)
        (inbox / "cut.wav").write_bytes(cut[:len(cut) // 3])  # the link drops
        _wait_for(lambda: watching.said("; 2 in "))
        rows = {Path(r["path"]).name: r for r in _rows(out)}
        assert float(rows["slow.wav"]["duration_s"]) == pytest.approx(4.0)
        # white noise is judged, and may well be called unlike the training data
        assert rows["slow.wav"]["status"] in ("ok", "unfamiliar") and rows["slow.wav"]["decision"]
        assert rows["cut.wav"]["status"] == "truncated" and not rows["cut.wav"]["decision"]
        assert watching.said("(--max-wait); judged as it is")
        (inbox / "cut.wav").write_bytes(cut)  # the rest, sent again
        _wait_for(lambda: watching.said("1 again: changed since judged"))
    finally:
        stdout = watching.stop()
    assert watching.proc.returncode == 0, "".join(watching.lines)
    rows = _rows(out)
    assert sorted(Path(r["path"]).name for r in rows) == ["cut.wav", "slow.wav"]
    whole = {Path(r["path"]).name: r for r in rows}["cut.wav"]
    assert whole["status"] in ("ok", "unfamiliar") and whole["decision"]
    assert float(whole["duration_s"]) == pytest.approx(3.0)
    assert "stopped watching: 3 recording(s) judged in this run, 2 in" in stdout
