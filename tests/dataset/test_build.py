"""`leakhunter build`: the three input layouts, the HDF5 schema, bad input, interruption, the
--min-duration floor, the CUDA path (features computed in the main process), and its faults:
SIGKILL mid-build, full and failing disks at every write site, two builds on one folder,
input that vanishes or shrinks between the scan and the read (tests/helpers/faults.py)."""

from __future__ import annotations

import csv
import errno
import json
import shutil
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from leakhunter.cli import main
from leakhunter.config import SPLITS, AudioConfig, BuildConfig, FeatureConfig
from leakhunter.dataset import build as build_module
from leakhunter.dataset import extract as extract_module
from leakhunter.dataset import store
from leakhunter.dataset.build import build_dataset
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES, read_split_info
from leakhunter.recordings.audio import load_recording
from leakhunter.recordings.features import LogMel, extract
from leakhunter.runtime import locks, safe_write

from ..helpers.faults import (
    REASON,
    fail_writes,
    kill_and_check_orphans,
    one_line,
    start_held,
    temps,
)
from ..helpers.samples import EXPECTED_REASON, bad_files, needs_real, real_files

OUTPUTS = [*SPLIT_FILES.values(), "labels.json", "config.json", "build_report.json"]


def _infos(out: Path) -> dict[str, store.SplitInfo]:
    return {split: read_split_info(out / SPLIT_FILES[split]) for split in SPLITS}


def _assert_no_leaks(out: Path) -> None:
    """No sensor and no audio content in two splits."""
    for column in ("sensor_id", "content_hash"):
        where = defaultdict(set)
        for split, info in _infos(out).items():
            for value in info.files[column]:
                if value:
                    where[value].add(split)
        assert all(len(s) == 1 for s in where.values()), column


def test_label_folders_build_writes_schema(dataset: Path, recordings: Path) -> None:
    assert sorted(p.name for p in dataset.iterdir()) == sorted(OUTPUTS)
    assert json.loads((dataset / "labels.json").read_text()) == {"labels": ["LEAK", "NOLEAK"]}
    report = json.loads((dataset / "build_report.json").read_text())
    assert report["layout"] == "label-folders"
    assert len(report["excluded_out_of_water"]) == 2  # one per label in the fixture
    assert report["skipped"] == []
    total = sum(sp["recordings"] for sp in report["splits"].values())
    assert total == 22  # 24 recordings less two out of water
    for split in SPLITS:
        with h5py.File(dataset / SPLIT_FILES[split], "r") as h5:
            n = h5["mel"].shape[0]
            assert h5["mel"].dtype == np.float16 and h5["mel"].shape[1:] == (32, 7)
            assert h5["mel"].chunks[1:] == (32, 7)
            assert h5["label"].dtype == np.int16 and h5["label"].shape == (n,)
            assert h5["file_index"].dtype == np.int32 and h5["start_s"].dtype == np.float32
            assert h5.attrs["schema_version"] == 1 and h5.attrs["split"] == split
            assert bool(h5.attrs["complete"])
            assert json.loads(h5.attrs["labels"]) == ["LEAK", "NOLEAK"]
            assert json.loads(h5.attrs["feature_config"])["n_mels"] == 32
            assert set(h5["files"]) == set(store.FILE_COLUMNS)
            assert n == report["splits"][split]["segments"] > 0
    _assert_no_leaks(dataset)


def test_stored_features_are_the_front_end_of_each_recording(dataset: Path) -> None:
    info = read_split_info(dataset / SPLIT_FILES["VALIDATION"])
    front = LogMel(info.feature)
    with h5py.File(info.path, "r") as h5:
        for row in (0, info.recordings - 1):
            path = info.files["path"][row]
            first, count = info.files["first_segment"][row], info.files["segment_count"][row]
            rec = load_recording(path, info.feature, AudioConfig())
            (expected,) = extract([rec.waveform], front)
            assert count == expected.shape[0] == info.feature.n_segments(rec.waveform.size)
            stored = h5["mel"][first:first + count].astype(np.float32)
            np.testing.assert_allclose(stored, expected, atol=0.05, rtol=1e-3)  # float16
            assert (h5["file_index"][first:first + count] == row).all()
            assert (h5["label"][first:first + count] == info.files["label"][row]).all()
            np.testing.assert_allclose(h5["start_s"][first:first + 3], [0, 0.125, 0.25])
            assert info.files["sample_rate"][row] == 4096
            assert info.files["duration_s"][row] == pytest.approx(2.0)
            assert info.files["sensor_id"][row].startswith("S")
            assert info.files["gain_db"][row] > 1


def test_parallel_build_equals_in_process_build(recordings: Path, dataset: Path,
                                                tmp_path: Path) -> None:
    build_dataset(recordings, tmp_path, BuildConfig(workers=2, files_per_task=3))
    for split in SPLITS:
        with h5py.File(dataset / SPLIT_FILES[split], "r") as a, \
                h5py.File(tmp_path / SPLIT_FILES[split], "r") as b:
            for name in ("mel", "label", "file_index", "start_s"):
                np.testing.assert_array_equal(a[name][()], b[name][()])
            assert list(a["files/path"].asstr()[()]) == list(b["files/path"].asstr()[()])


def test_already_split_layout_keeps_the_given_splits(recordings: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    sensors = sorted({p.name.split("~")[0] for p in recordings.rglob("*.wav")})
    chosen = {}
    for path in sorted(recordings.rglob("*.wav")):
        sensor = path.name.split("~")[0]
        split = SPLITS[sensors.index(sensor) % 3]
        chosen[path.name] = split
        dst = src / split / path.parent.name / path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dst)
    report = build_dataset(src, tmp_path / "out", BuildConfig(workers=1))
    assert report["layout"] == "split-folders"
    for split, info in _infos(tmp_path / "out").items():
        assert {chosen[Path(p).name] for p in info.files["path"]} == {split}


def test_manifest_with_and_without_splits(recordings: Path, tmp_path: Path) -> None:
    rows = [(str(p.relative_to(recordings)), p.parent.name) for p in
            sorted(recordings.rglob("*.wav"))]
    manifest = recordings.parent / "manifest_auto.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "group"])
        w.writerows([(p, lab, f"site{i % 6}-{lab}") for i, (p, lab) in enumerate(rows)])
    # paths are relative to the manifest's folder, so move it beside the recordings
    moved = recordings / "manifest_auto.csv"
    shutil.move(manifest, moved)
    try:
        report = build_dataset(moved, tmp_path / "auto", BuildConfig(workers=1))
    finally:
        moved.unlink()
    assert report["layout"] == "manifest"
    for info in _infos(tmp_path / "auto").values():  # the manifest's group is the sensor
        assert all(g.startswith("site") for g in info.files["sensor_id"])
    _assert_no_leaks(tmp_path / "auto")

    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        for i, (p, lab) in enumerate(rows):
            w.writerow([recordings / p, lab, ("train", "val", "test")[i % 3]])
    build_dataset(fixed, tmp_path / "fixed", BuildConfig(workers=1))
    for split, info in _infos(tmp_path / "fixed").items():
        expect = {str(recordings / p) for i, (p, _) in enumerate(rows)
                  if SPLITS[i % 3] == split}
        assert set(info.files["path"]) <= expect


def test_bad_recordings_are_skipped_with_reasons(recordings_copy: Path, tmp_path: Path) -> None:
    bad = bad_files(tmp_path / "bad")
    for kind, path in bad.items():
        if path.exists() and kind != "missing":
            shutil.copy(path, recordings_copy / "LEAK" / f"bad-{path.name}")
    odd = recordings_copy / "NOLEAK" / "unnamed recording.wav"
    x = np.random.default_rng(0).standard_normal(8192).astype(np.float32) * 0.1
    sf.write(odd, x, 4096)
    report = build_dataset(recordings_copy, tmp_path / "out", BuildConfig(workers=2))
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    for kind, path in bad.items():
        if kind != "missing":
            assert EXPECTED_REASON[kind] in reasons[f"bad-{path.name}"], kind
    assert len(reasons) == len(bad) - 1
    # a name outside the convention is used, with empty metadata
    all_paths = {p: (s, info) for s, info in _infos(tmp_path / "out").items()
                 for p in info.files["path"]}
    split, info = all_paths[str(odd)]
    row = list(info.files["path"]).index(str(odd))
    assert info.files["sensor_id"][row] == "" and np.isnan(info.files["gain_db"][row])


def test_strict_turns_a_skip_into_a_failure(recordings_copy: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (recordings_copy / "LEAK" / "broken.wav").write_text("not audio")
    code = main(["build", str(recordings_copy), "--out", str(tmp_path / "o"), "--strict",
                 "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "--strict" in err and "broken.wav" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o" / "build_report.json").exists()
    assert not list((tmp_path / "o").glob("*.H5"))


def test_duplicates_stay_in_one_split_and_are_reported(recordings_copy: Path,
                                                       tmp_path: Path) -> None:
    leak = sorted((recordings_copy / "LEAK").glob("*.wav"))
    source = next(p for p in leak if not p.name.endswith("~1.wav"))
    other = sorted({p.name.split("~")[0] for p in leak} - {source.name.split("~")[0]})[0]
    # the same audio under another LEAK sensor and under a name without a sensor
    shutil.copy(source, recordings_copy / "LEAK" / f"{other}~COPY~T~12.wav")
    shutil.copy(source, recordings_copy / "LEAK" / "copy.wav")
    report = build_dataset(recordings_copy, tmp_path / "o", BuildConfig(workers=1))
    (dup,) = report["duplicates"]
    assert len(dup["paths"]) == 3 and len(dup["splits"]) == 1
    _assert_no_leaks(tmp_path / "o")


def test_duplicate_across_given_splits_is_dropped(recordings: Path, tmp_path: Path) -> None:
    rows = sorted(recordings.rglob("*.wav"))
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        for i, p in enumerate(rows):
            w.writerow([p, p.parent.name, SPLITS[i % 3]])
        copy = tmp_path / "copy.wav"
        shutil.copy(rows[3], copy)  # rows[3] is in TRAINING
        w.writerow([copy, rows[3].parent.name, "TESTING"])
    report = build_dataset(manifest, tmp_path / "o", BuildConfig(workers=1))
    dropped = [s for s in report["skipped"] if s["path"] == str(copy)]
    assert dropped and "duplicate of" in dropped[0]["reason"]


@pytest.mark.parametrize("make_input,message", [
    (lambda tmp: tmp / "nowhere", "input not found"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no recordings found"),
    (lambda tmp: _one_label(tmp), "only one label"),
    (lambda tmp: _bad_manifest(tmp), "must include 'path' and 'label'"),
])
def test_unusable_input_is_one_line_and_exit_1(tmp_path: Path, make_input, message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["build", str(make_input(tmp_path)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("flags,message", [
    (["--split-seed", "-1"], "split seed must be in [0, 4294967295]"),
    (["--chunk-segments", "0"], "chunk_segments must be at least 1"),
    (["--files-per-task", "0"], "files_per_task must be at least 1"),
    (["--workers", "-1"], "workers must be at least 0"),
    (["--silence-rms", "-1"], "silence_rms must be non-negative"),
])
def test_meaningless_settings_are_one_line_and_exit_1(recordings: Path, tmp_path: Path,
                                                      flags: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    code = main(["build", str(recordings), "--out", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err
    assert code == 1 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _one_label(tmp: Path) -> Path:
    (tmp / "in" / "LEAK").mkdir(parents=True)
    sf.write(tmp / "in" / "LEAK" / "a.wav", np.ones(8192, np.float32) * 0.1, 4096)
    return tmp / "in"


def _bad_manifest(tmp: Path) -> Path:
    (tmp / "m.csv").write_text("file,class\na.wav,LEAK\n")
    return tmp / "m.csv"


def test_label_missing_from_a_split_is_an_error(recordings: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    shutil.copytree(recordings, src)
    # keep NOLEAK recordings of two sensors only: too few to fill three splits by sensor
    noleak_sensors = sorted({p.name.split("~")[0] for p in (src / "NOLEAK").glob("*.wav")})
    for p in (src / "NOLEAK").glob("*.wav"):
        if p.name.split("~")[0] not in noleak_sensors[:2]:
            p.unlink()
    code = main(["build", str(src), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "label NOLEAK has no recordings in" in err and "--group-by" in err
    assert main(["build", str(src), "--out", str(tmp_path / "out"), "--workers", "1",
                 "--group-by", "recording"]) == 0


def test_existing_dataset_is_not_overwritten_without_flag(dataset: Path, recordings: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(dataset, out)
    before = (out / "TRAINING_DATASET.H5").read_bytes()
    assert main(["build", str(recordings), "--out", str(out), "--workers", "1"]) == 1
    assert (out / "TRAINING_DATASET.H5").read_bytes() == before
    assert main(["build", str(recordings), "--out", str(out), "--workers", "1",
                 "--overwrite", "--split-seed", "5"]) == 0
    assert (out / "TRAINING_DATASET.H5").read_bytes() != before


def test_interrupted_build_leaves_no_finished_looking_file(recordings: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    calls = {"n": 0}
    original = store.SplitWriter.append

    def append_then_interrupt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(store.SplitWriter, "append", append_then_interrupt)
    out = tmp_path / "out"
    assert main(["build", str(recordings), "--out", str(out), "--workers", "2"]) == 130
    assert not out.exists()  # no .H5, no .partial, no report: not even the folder it made


def test_old_dataset_survives_an_interrupted_overwrite(dataset: Path, recordings: Path,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    shutil.copytree(dataset, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.SplitWriter, "append", fail)
    assert main(["build", str(recordings), "--out", str(out), "--overwrite",
                 "--workers", "1"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_config_file_and_flags(recordings: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "build.toml"
    cfg.write_text("workers = 1\n[feature]\nn_mels = 20\nsample_rate = 4096\n"
                   "[split]\nseed = 3\n")
    out = tmp_path / "out"
    assert main(["build", str(recordings), "--out", str(out), "--config", str(cfg),
                 "--n-mels", "24"]) == 0
    info = read_split_info(out / SPLIT_FILES["TRAINING"])
    assert info.feature.n_mels == 24 and info.feature.sample_rate == 4096
    saved = json.loads((out / "config.json").read_text())["build"]
    assert saved["split"]["seed"] == 3 and saved["workers"] == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[feature]\nn_mel = 3\n")
    assert main(["build", str(recordings), "--out", str(tmp_path / "x"), "--config",
                 str(bad)]) == 1


@needs_real
def test_real_recordings_build_beside_synthetic_ones(recordings: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for p in sorted(recordings.rglob("*.wav")):
            w.writerow([p, p.parent.name])
        for p in real_files():
            w.writerow([p, "NOLEAK" if p.stem == "no-leak" else "LEAK"])
    report = build_dataset(manifest, tmp_path / "o", BuildConfig(workers=2))
    assert report["skipped"] == []
    rows = {Path(p).name: (info, i) for info in _infos(tmp_path / "o").values()
            for i, p in enumerate(info.files["path"])}
    for p in real_files():
        info, i = rows[p.name]
        assert info.files["sample_rate"][i] == 8000
        assert info.files["segment_count"][i] == FeatureConfig().n_segments(
            round(info.files["duration_s"][i] * 8192))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_features_match_cpu(recordings: Path, dataset: Path, tmp_path: Path) -> None:
    build_dataset(recordings, tmp_path, BuildConfig(workers=2, device="cuda"))
    for split in SPLITS:
        with h5py.File(dataset / SPLIT_FILES[split], "r") as a, \
                h5py.File(tmp_path / SPLIT_FILES[split], "r") as b:
            np.testing.assert_allclose(a["mel"][()].astype(np.float32),
                                       b["mel"][()].astype(np.float32), atol=0.05)
            np.testing.assert_array_equal(a["file_index"][()], b["file_index"][()])


def test_unavailable_device_is_one_line(recordings: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["build", str(recordings), "--out", str(tmp_path / "o"), "--device", "tpu"])
    assert code == 1 and "--device tpu" in capsys.readouterr().err


def test_build_min_duration_floor(presplit: Path, tmp_path: Path) -> None:
    assert main(["-q", "build", str(presplit), "--out", str(tmp_path / "ds"), "--workers",
                 "1", "--min-duration", "0.5"]) == 0
    report = json.loads((tmp_path / "ds" / "build_report.json").read_text())
    assert report["padded"] == 0 and len(report["skipped"]) == 3
    assert all("minimum duration is 0.5 s" in s["reason"] for s in report["skipped"])


def test_build_with_features_in_the_main_process_matches(
        recordings: Path, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA build path (workers decode, one process computes features in flat batches
    of many recordings) gives the same dataset as the CPU path."""
    monkeypatch.setattr(extract_module, "features_in_main", lambda device: True)
    monkeypatch.setattr(extract_module, "MAIN_BATCH_SAMPLES", 50_000)  # several batches
    build_dataset(recordings, tmp_path, BuildConfig(workers=2))
    for split in SPLIT_FILES.values():
        a, b = load_split(dataset / split, "yes"), load_split(tmp_path / split, "yes")
        assert torch.equal(a.mel, b.mel)
        np.testing.assert_array_equal(a.file_index, b.file_index)


# --- no orphans -----------------------------------------------------------------------------

def _same_dataset(a: Path, b: Path) -> None:
    for name in SPLIT_FILES.values():
        with h5py.File(a / name, "r") as fa, h5py.File(b / name, "r") as fb:
            np.testing.assert_array_equal(fa["mel"][()], fb["mel"][()])
            np.testing.assert_array_equal(fa["files/path"][()], fb["files/path"][()])
            np.testing.assert_array_equal(fa["label"][()], fb["label"][()])


@pytest.mark.slow
@pytest.mark.parametrize("point,workers_expected", [("spool", 2), ("splits", 0)])
def test_build_killed_leaves_no_worker_and_reruns_to_the_same_dataset(
        recordings: Path, dataset: Path, tmp_path: Path, point: str,
        workers_expected: int) -> None:
    out = tmp_path / "out"
    proc, _ = start_held(tmp_path, point, "build", str(recordings), "--out", str(out),
                         "--workers", "2", "--files-per-task", "1")
    assert kill_and_check_orphans(proc) >= workers_expected
    assert main(["info", str(out)]) == 1  # not a finished dataset, and info says so
    assert not (out / "build_report.json").exists()
    # the dead process's lock went with it; the rerun clears its partial files
    assert main(["-q", "build", str(recordings), "--out", str(out), "--workers", "2"]) == 0
    assert main(["-q", "info", str(out)]) == 0 and temps(out) == []
    _same_dataset(dataset, out)


# --- full disk and I/O errors at every write site -------------------------------------------

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
    fail_writes(monkeypatch, pattern, number)
    assert main(["-q", "build", str(recordings), "--out", str(out), "--workers", "1"]) == 1
    one_line(capsys.readouterr().err, pattern.replace(".partial", ""), what, REASON[number])
    assert temps(out) == [] and not (out / "build_report.json").exists()
    monkeypatch.undo()
    assert main(["info", str(out)]) == 1  # no build_report.json: unfinished, and said so
    assert main(["-q", "build", str(recordings), "--out", str(out), "--workers", "1",
                 "--overwrite"]) == 0


def test_spool_failure_reports_the_space_needed(recordings: Path, tmp_path: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fail_writes(monkeypatch, "features.spool.partial", errno.ENOSPC, after=50_000)
    assert main(["-q", "build", str(recordings), "--out", str(tmp_path / "o"),
                 "--workers", "1"]) == 1
    err = capsys.readouterr().err
    one_line(err, "[ENOSPC]", "(needed more than ", " kB, ", " free)")


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
    one_line(capsys.readouterr().err, str(out), "writing the split files",
             "Input/output error [EIO]")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_too_little_space_for_the_split_files_is_refused_before_writing(
        recordings: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(safe_write.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=100_000))
    out = tmp_path / "out"
    assert main(["-q", "build", str(recordings), "--out", str(out), "--workers", "1"]) == 1
    one_line(capsys.readouterr().err, "writing the split files", "[ENOSPC]",
             "needed about", "100 kB free")
    assert not out.exists()  # nothing written, not even the folder


# --- one writer per folder ------------------------------------------------------------------

def test_second_build_into_one_folder_is_refused_and_the_first_finishes(
        recordings: Path, dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    proc, marker = start_held(tmp_path, "splits", "build", str(recordings), "--out",
                              str(out), "--workers", "1")
    try:
        assert main(["build", str(recordings), "--out", str(out), "--overwrite",
                     "--workers", "1"]) == 1
        one_line(capsys.readouterr().err, str(out), f"in use by PID {proc.pid}", "build",
                 "wait for it to finish")
        holder = json.loads((out / locks.LOCK_FILE).read_text())
        assert holder["pid"] == proc.pid and "--out" in holder["command"]
    finally:
        marker.with_suffix(".go").touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _same_dataset(dataset, out)
    assert not (out / locks.LOCK_FILE).exists()  # released and removed


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


def test_truncated_recordings_are_skipped_and_listed_or_kept_when_allowed(
        recordings_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = sorted((recordings_copy / "LEAK").glob("*~[2-9]*.wav"))[0]  # not out of water
    cut = recordings_copy / "LEAK" / "S0999~R999999~20240101T000000~20.wav"
    cut.write_bytes(source.read_bytes()[:44 + 1000])  # header: 2 s; file: 500 frames
    reason = "truncated: header declares 2.00 s, file holds 0.12 s"
    report = build_dataset(recordings_copy, tmp_path / "skip", BuildConfig(workers=1))
    assert {Path(s["path"]).name: s["reason"] for s in report["skipped"]} == {cut.name: reason}
    assert report["truncated"] == []
    assert main(["-q", "build", str(recordings_copy), "--out", str(tmp_path / "strict"),
                 "--workers", "1", "--strict"]) == 1
    assert reason in capsys.readouterr().err
    assert main(["-q", "build", str(recordings_copy), "--out", str(tmp_path / "kept"),
                 "--workers", "1", "--allow-truncated"]) == 0
    assert "1 truncated recording(s) kept" in capsys.readouterr().out
    kept = json.loads((tmp_path / "kept" / "build_report.json").read_text())
    assert kept["skipped"] == [] and kept["truncated"] == [{"path": str(cut),
                                                            "reason": reason}]
    rows = {split: read_split_info(tmp_path / "kept" / SPLIT_FILES[split]).files
            for split in SPLITS}
    found = [(f["duration_s"][i], f["padded"][i]) for f in rows.values()
             for i, p in enumerate(f["path"]) if p == str(cut)]
    assert len(found) == 1 and found[0][0] == pytest.approx(500 / 4096) and found[0][1]
