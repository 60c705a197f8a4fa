"""A whole study (leakhunter.study.study and ``leakhunter study``): every cell, model and
fold run once, features built once per cell, a killed study resumed without repeating a
run, changed settings refused, invalid cells and a missing extra said in one line."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from leakhunter.cli import main
from leakhunter.config import BuildConfig, ModelConfig, StudyConfig, TrainConfig
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.errors import InputError
from leakhunter.study import study as study_module
from leakhunter.study.baselines import XGBOOST_LINE
from leakhunter.study.cache import FEATURES
from leakhunter.study.raw import cached_raw, segments_of
from leakhunter.study.runs import RUNS_FILE

from ..helpers.cuda import FakeCuda

CFG = StudyConfig(long_s=(0.25, 0.5), short_points=(512,), models=("cnn-mel", "mfcc-rf"),
                  folds=3, build=BuildConfig(workers=1),
                  train=TrainConfig(epochs=1, batch_size=64, augment=(),
                                    model=ModelConfig(width=8, dense=32)))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 recordings per label from 4 sensors each, 2 s at 8,192 Hz."""
    out = tmp_path_factory.mktemp("study") / "rec"
    assert main(["synth", str(out), "--count", "8", "--sensors", "4", "--duration", "2",
                 "--sample-rate", "8192", "--out-of-water", "0", "-q"]) == 0
    return out


def rows(study_dir: Path) -> list[dict[str, str]]:
    with (study_dir / RUNS_FILE).open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def finished(recordings: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("study") / "out"
    return out, study_module.run_study(recordings, out, CFG)


def test_every_cell_model_and_fold_runs_once_and_tests_every_recording(
        finished: tuple[Path, dict]) -> None:
    out, result = finished
    runs = rows(out)
    assert result["planned"] == result["ran"] == len(runs) == 2 * 2 * 3
    assert {r["status"] for r in runs} == {"ok"}
    keys = Counter((r["cell"], r["model"], r["fold"]) for r in runs)
    assert set(keys.values()) == {1}
    for cell in ("long0.25-short512", "long0.5-short512"):
        for model in CFG.models:
            tested = [int(r["test_recordings"]) for r in runs
                      if r["cell"] == cell and r["model"] == model]
            assert sum(tested) == 16  # each recording tested exactly once per cell and model
    for r in runs:
        assert 0.0 <= float(r["accuracy"]) <= 1.0 and float(r["seconds"]) > 0
    assert len([p for p in (out / FEATURES).iterdir() if p.is_dir()]) == 2  # one per cell
    for name in ("summary.csv", "segmentation.png", "models.png", "study.md",
                 "best_build.toml"):
        assert (out / name).is_file(), name
    assert not (out / "work").exists()  # fold datasets and run folders cleaned up


def test_a_killed_study_resumes_without_repeating_a_run(
        recordings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = replace(CFG, long_s=(0.25,), models=("mfcc-rf",))
    real = study_module.run_model
    calls: list[str] = []

    def killed_on_third(model: str, fold_dir: Path, *args):
        calls.append(str(fold_dir))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C, or SIGKILL between two runs
        return real(model, fold_dir, *args)

    monkeypatch.setattr(study_module, "run_model", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        study_module.run_study(recordings, tmp_path, cfg)
    assert len(rows(tmp_path)) == 2
    with (tmp_path / RUNS_FILE).open("a") as fh:  # a row cut off by a kill mid-write
        fh.write("long0.25-short512,0.25,512,mfcc-rf,2,0.5")
    calls.clear()
    monkeypatch.setattr(study_module, "run_model", lambda *a: (calls.append("x"), real(*a))[1])
    result = study_module.run_study(recordings, tmp_path, cfg)
    assert (result["done_before"], result["ran"], len(calls)) == (2, 1, 1)
    assert result["build_s"] == 0.0  # the cell's features were reused, not rebuilt
    assert sorted(r["fold"] for r in rows(tmp_path)) == ["0", "1", "2"]


def test_a_failed_run_runs_again_and_a_row_without_its_line_end_is_not_done(
        recordings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that failed (here a full disk on fold 1) runs again when the study does, and
    the summary counts it finished; a whole row that lost its line ending to a kill is not
    a run either (the next append cuts it off), so it is run again too."""
    cfg = replace(CFG, long_s=(0.25,), models=("mfcc-rf",))
    real = study_module.run_model

    calls: list[str] = []

    def full_disk_on_the_second_run(model: str, fold_dir: Path, *args):
        calls.append(str(fold_dir))
        if len(calls) == 2:  # (runs go fold 0, 1, 2)
            raise InputError("writing the features failed: No space left on device")
        return real(model, fold_dir, *args)

    monkeypatch.setattr(study_module, "run_model", full_disk_on_the_second_run)
    first = study_module.run_study(recordings, tmp_path, cfg)
    assert (first["ran"], first["failed"]) == (3, 1)
    runs = tmp_path / RUNS_FILE
    runs.write_bytes(runs.read_bytes().rstrip(b"\r\n"))  # the last row, fold 2, torn
    monkeypatch.setattr(study_module, "run_model", real)
    again = study_module.run_study(recordings, tmp_path, cfg)
    assert (again["done_before"], again["ran"], again["failed"]) == (1, 2, 0)
    assert [(r["fold"], r["status"]) for r in rows(tmp_path)] == [
        ("0", "ok"), ("1", "failed"), ("1", "ok"), ("2", "ok")]
    with (tmp_path / "summary.csv").open(newline="") as fh:
        [summary] = list(csv.DictReader(fh))
    assert (summary["folds"], summary["failed"]) == ("3", "0")


def test_other_settings_in_the_same_folder_are_refused(finished: tuple[Path, dict],
                                                       recordings: Path) -> None:
    out, _ = finished
    with pytest.raises(InputError, match="holds a study with other train"):
        study_module.run_study(recordings, out, replace(CFG, train=replace(CFG.train,
                                                                           epochs=3)))


def test_invalid_cells_are_skipped_with_their_reason(recordings: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(recordings.parent)  # recordings given relative to where one stands
    assert main(["study", recordings.name, "--out", str(tmp_path), "--long", "0.125",
                 "--short", "512,1024", "--models", "mfcc-rf", "--folds", "3",
                 "--workers", "1", "-q"]) == 0
    said = capsys.readouterr().out
    assert "skipped 0.125 s / 1024 points: a 0.125 s segment at 8192 Hz is 1024 points: " \
           "one 1024-point frame (at least 2 frames needed)" in said
    assert "3 runs planned" in said
    assert "0.125 s / 1024 points: invalid" in (tmp_path / "study.md").read_text()


def test_a_missing_xgboost_is_one_line(recordings: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(study_module, "available",
                        lambda m: XGBOOST_LINE if m == "mfcc-xgboost" else None)
    assert main(["study", str(recordings), "--out", str(tmp_path), "--long", "0.25",
                 "--short", "512", "--models", "mfcc-xgboost", "--folds", "3",
                 "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no model to run: mfcc-xgboost skipped: mfcc-xgboost needs xgboost: pip install " \
           "'leakhunter[baselines]'" in err


@pytest.mark.parametrize("flags,message", [
    (["--seed", "-1"], "seed must be in [0, 4294967295]"),
    (["--train-seed", "-1"], "training seed must be in [0, 4294967295]"),
    (["--time-budget", "-1"], "time_budget_s must be non-negative"),
    (["--workers", "-1"], "workers must be at least 0"),
])
def test_meaningless_settings_are_one_line(tmp_path: Path, flags: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", str(tmp_path / "rec"), "--out", str(tmp_path / "out"), *flags]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_study_shared_by_two_machines_runs_each_run_once(
        recordings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Machine 1 stops (Ctrl-C) in its second run, which goes back to the queue; machine 2,
    with a folder of its own, runs everything left; machine 1, started again, finds nothing
    left and writes the whole study."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    cfg = replace(CFG, long_s=(0.25,), models=("mfcc-rf",), storage=url)
    real = study_module.run_model
    calls: list[tuple[str, Path]] = []

    def stopping_on_second(model: str, fold_dir: Path, *args):
        calls.append(("one", fold_dir))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, fold_dir, *args)

    monkeypatch.setattr(study_module, "run_model", stopping_on_second)
    with pytest.raises(KeyboardInterrupt):
        study_module.run_study(recordings, tmp_path / "one", cfg)
    monkeypatch.setattr(study_module, "run_model", lambda *a: (calls.append(("two", a[1])),
                                                                real(*a))[1])
    two = study_module.run_study(recordings, tmp_path / "two", cfg)
    assert (two["planned"], two["done_before"], two["ran"]) == (3, 1, 2)
    again = study_module.run_study(recordings, tmp_path / "one", cfg)
    assert again["ran"] == 0
    for folder in ("one", "two"):
        done = rows(tmp_path / folder)
        assert sorted(r["fold"] for r in done) == ["0", "1", "2"]
        assert {r["status"] for r in done} == {"ok"}
    assert [who for who, _ in calls] == ["one", "one", "two", "two"]
    with pytest.raises(InputError, match="plans another study"):
        study_module.run_study(recordings, tmp_path / "three", replace(cfg, long_s=(0.5,)))


def test_the_raw_cnn_sees_each_segments_waveform(finished: tuple[Path, dict],
                                                 recordings: Path, tmp_path: Path) -> None:
    out, _ = finished
    (features,) = [p for p in (out / FEATURES).glob("long0.25-short512-*") if p.is_dir()]
    raw = cached_raw(features, CFG.build.audio)
    mel = load_split(features / SPLIT_FILES["TRAINING"], "yes")
    data = load_split(raw / SPLIT_FILES["TRAINING"], "yes")
    feature = mel.feature
    assert data.mel.shape == (mel.segments, 1, feature.segment_samples)
    assert data.paths == mel.paths and (data.file_index == mel.file_index).all()
    first = data.file_index == 0
    expected = segments_of(data.paths[0], feature, CFG.build.audio, int(first.sum()))
    np.testing.assert_allclose(data.mel[torch.from_numpy(first)][:, 0].float().numpy(),
                               expected, atol=2e-3)  # float16 of samples in [-1, 1]
    cfg = replace(CFG, long_s=(0.25,), models=("cnn-raw",))
    result = study_module.run_study(recordings, tmp_path, cfg)
    assert result["ran"] == 3 and {r["status"] for r in rows(tmp_path)} == {"ok"}


def test_jobs_share_the_runs_of_one_machine(recordings: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Two jobs (this process and one started for it) take the runs from one queue: each
    run once, one runs.csv, the feature cache built once."""
    assert main(["study", str(recordings), "--out", str(tmp_path), "--long", "0.25",
                 "--short", "512", "--models", "mfcc-rf", "--folds", "3", "--jobs", "2",
                 "--workers", "1"]) == 0
    assert "3 runs planned, 0 done before, 3 run now (0 failed)" in capsys.readouterr().out
    assert sorted(r["fold"] for r in rows(tmp_path)) == ["0", "1", "2"]
    assert (tmp_path / "study.db").is_file()
    assert len([p for p in (tmp_path / FEATURES).iterdir() if p.is_dir()]) == 1


def test_jobs_take_the_cuda_devices_in_turn(fake_cuda: FakeCuda) -> None:
    fake_cuda.count = 2
    shared = replace(CFG, storage="sqlite:///x.db")
    assert [study_module.for_job(shared, job, 3).train.device for job in range(3)] == \
        ["cuda:0", "cuda:1", "cuda:0"]
    on_cpu = replace(shared, train=replace(CFG.train, device="cpu"))
    assert study_module.for_job(on_cpu, 1, 3).train.device == "cpu"


def test_one_fold_is_builds_fixed_split(recordings: Path, tmp_path: Path) -> None:
    cfg = replace(CFG, long_s=(0.25,), models=("mfcc-rf",), folds=1,
                  build=replace(CFG.build, split=replace(CFG.build.split,
                                                         fractions=(0.5, 0.25, 0.25))))
    result = study_module.run_study(recordings, tmp_path, cfg)
    (run,) = rows(tmp_path)
    assert result["ran"] == 1 and run["fold"] == "0" and run["status"] == "ok"
    assert int(run["test_recordings"]) + int(run["train_recordings"]) < 16
    md = (tmp_path / "study.md").read_text()
    assert "fixed split of the build settings; its VALIDATION split for early stopping" in md
    assert "With one fold there is no ± to show" in md and "over the 1 folds" not in md


def test_recordings_out_of_water_are_left_out_of_the_folds(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    assert main(["synth", str(rec), "--count", "8", "--sensors", "4", "--duration", "2",
                 "--sample-rate", "8192", "--out-of-water", "1", "-q"]) == 0
    cfg = replace(CFG, long_s=(0.25,), models=("mfcc-rf",))
    result = study_module.run_study(rec, tmp_path / "out", cfg)
    assert sum(int(r["test_recordings"]) for r in rows(tmp_path / "out")) == 14
    assert "; 2 more left out, out of water (gain <= 1 dB)" in result["notes"][0]
