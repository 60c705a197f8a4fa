"""The whole chain as `leakhunter demo` runs it, on a tiny dataset: every artifact exists
and the artifacts agree with each other. The demo runs once per test session (the
``demo_run`` fixture); the tests read it, or a copy."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import h5py
import pytest

from leakhunter.cli import main
from leakhunter.config import DemoConfig
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.demo import MARKER, prepare_folder, run_demo
from leakhunter.errors import InputError
from leakhunter.model import checkpoint

from .helpers.faults import one_line

TINY = ["--count", "12", "--fresh", "4", "--duration", "2", "--epochs", "2"]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(folder, printed summary) of one tiny `leakhunter demo`. Read-only: copy it first."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["-q", "demo", "--out", str(out), *TINY]) == 0
    return out, printed.getvalue()


@pytest.mark.slow
def test_demo_chain_is_complete_and_consistent(demo_run: tuple[Path, str],
                                               tmp_path: Path) -> None:
    out, printed = demo_run
    assert "chosen by train on VALIDATION" in printed and "TESTING" in printed
    assert "calibrated for specificity >= 0.95 on VALIDATION" in printed
    assert f"survey report    {out / 'report.html'}" in printed
    for path in ("recordings/LEAK", "dataset/build_report.json", "run/best.pt",
                 "run/curves.png", "run/checkpoints/last.pt", "run/eval-testing/report.json",
                 "run/eval-testing/roc.png", "predictions.csv", "export/model.onnx",
                 "export/model_card.json", "predictions.info.json", "report.html"):
        assert (out / path).exists(), path

    best = checkpoint.load(out / "run" / "best.pt", "model")
    with h5py.File(out / "dataset" / SPLIT_FILES["TESTING"], "r") as h5:
        assert json.loads(h5.attrs["feature_config"]) == best["feature_config"]
        assert json.loads(h5.attrs["labels"]) == best["class_names"]
    report = json.loads((out / "run" / "eval-testing" / "report.json").read_text())
    card = json.loads((out / "export" / "model_card.json").read_text())
    assert best["threshold"] == report["decision"]["threshold"] == card["threshold"]
    calibrated = checkpoint.load(out / "run" / "best-calibrated.pt", "model")
    assert calibrated["parent"]["sha256"] == card["source_sha256"]  # best.pt never changed
    assert "specificity" in calibrated["threshold_method"]
    assert "0.95" in calibrated["threshold_method"]
    strict = json.loads((out / "run" / "eval-calibrated" / "report.json").read_text())
    assert strict["decision"]["threshold"] == calibrated["threshold"]

    evaluated = {r["path"]: r["decision"] for r in
                 _csv(out / "run" / "eval-testing" / "predictions.csv")}
    assert main(["-q", "predict", str(out / "run" / "best.pt"), *evaluated, "--out",
                 str(tmp_path / "again.csv")]) == 0
    assert {r["path"]: r["decision"] for r in _csv(tmp_path / "again.csv")} == evaluated

    fresh = _csv(out / "predictions.csv")
    assert len(fresh) == 8 and all(r["path"].startswith(str(out / "fresh")) for r in fresh)


@pytest.mark.slow
def test_keep_reuses_recordings_dataset_and_model(demo_run: tuple[Path, str],
                                                  tmp_path: Path) -> None:
    out = tmp_path / "demo"
    shutil.copytree(demo_run[0], out)
    stamps = {p: (out / p).stat().st_mtime_ns for p in
              ("run/checkpoints/last.pt", "run/best.pt", "dataset/TRAINING_DATASET.H5")}
    assert main(["-q", "demo", "--out", str(out), "--keep", *TINY]) == 0
    assert {p: (out / p).stat().st_mtime_ns for p in stamps} == stamps
    assert (out / "report.html").stat().st_mtime_ns > stamps["run/best.pt"]  # redone


def test_the_demo_rebuilds_only_its_own_folder(tmp_path: Path) -> None:
    made = tmp_path / "made"
    prepare_folder(made, keep=False)
    (made / "run").mkdir()
    prepare_folder(made, keep=True)
    assert (made / "run").is_dir()  # kept
    prepare_folder(made, keep=False)
    assert sorted(p.name for p in made.iterdir()) == [MARKER]  # emptied for a rebuild
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not made by `leakhunter demo`"):
        prepare_folder(other, keep=False)
    # through the command line too: refused in one line, nothing deleted
    assert main(["-q", "demo", "--out", str(other), *TINY]) == 1
    assert (other / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("flags,message", [
    (["--fresh", "0"], "fresh must be at least 1"),
    (["--time-budget", "-1"], "time_budget_s must be non-negative"),
    (["--seed", "-1"], "seed must be in [0, 4294967295]"),
])
def test_meaningless_settings_are_one_line_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str],
        message: str) -> None:
    assert main(["-q", "demo", "--out", str(tmp_path / "d"), *TINY, *flags]) == 1
    one_line(capsys.readouterr().err, message)
    assert not (tmp_path / "d").exists()


def test_the_largest_seed_seeds_the_fresh_recordings_too(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """The fresh recordings' seed (the demo's + 1000) wraps within the seeds' range."""
    def stop(*args, **kwargs):
        raise InputError("stopped at the first step")

    monkeypatch.setattr("leakhunter.demo.synthesize", stop)
    with pytest.raises(InputError, match="stopped at the first step"):
        run_demo(tmp_path / "d", DemoConfig(seed=2**32 - 1))
