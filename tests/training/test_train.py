"""`leakhunter train`: one-epoch runs, exact resume, interruption, DDP, bad input, the
start-up log, and its faults: SIGKILL mid-epoch or mid-checkpoint and a resume to the
uninterrupted result, full and failing disks at every write site, a failing log file, a
second trainer on one run (tests/helpers/faults.py)."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch

from leakhunter.cli import main
from leakhunter.config import FeatureConfig, ModelConfig, SynthConfig, TrainConfig, to_dict
from leakhunter.dataset.store import SPLIT_FILES, SplitWriter
from leakhunter.model import checkpoint
from leakhunter.model.cnn import LeakCNN
from leakhunter.recordings.synth.synth import synthesize
from leakhunter.runtime import signals

from ..helpers.faults import (
    REASON,
    fail_writes,
    kill_and_check_orphans,
    one_line,
    start_held,
    temps,
)

SMALL = ["--width", "8", "--dense", "32", "--batch-size", "32", "--log-every", "2"]
# read from disk by two DataLoader workers, so that a kill mid-epoch has workers to orphan
TRAIN = [*SMALL, "--epochs", "2", "--patience", "50", "--preload", "no",
         "--loader-workers", "2"]


def _train(dataset: Path, run: Path, *extra: str) -> int:
    return main(["-q", "train", str(dataset), "--out", str(run), *SMALL, *extra])


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_one_epoch_writes_the_run_directory(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(dataset, run, "--epochs", "1") == 0
    for name in ("config.json", "train.log", "metrics.csv", "best.pt", "model_meta.json",
                 "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    rows = _rows(run)
    assert len(rows) == 1 and rows[0]["epoch"] == "1" and float(rows[0]["train_loss"]) > 0
    assert 0.0 <= float(rows[0]["val_file_f1"]) <= 1.0
    assert "epoch   1" in (run / "train.log").read_text()
    best = checkpoint.load(run / "best.pt", "model")
    last = checkpoint.load(run / "checkpoints" / "last.pt", "train-state")
    assert best["class_names"] == ["LEAK", "NOLEAK"] and best["positive"] == ["LEAK"]
    # the mel range fitted to the recordings (4,096 Hz: nothing above 2,048 Hz)
    fitted = to_dict(FeatureConfig(fmax=2048.0))
    assert best["task"] == "binary" and best["feature_config"] == fitted
    assert "optimizer" not in best and "optimizer" in last  # two different states
    meta = json.loads((run / "model_meta.json").read_text())
    assert meta["class_names"] == best["class_names"] and meta["epoch"] == 1
    model = LeakCNN(32, 7, 2, [0], ModelConfig(width=8, dense=32))
    model.load_state_dict(best["model"])
    assert model.norm_std.min() > 0 and not torch.equal(model.norm_mean, torch.zeros(32))
    out = model.eval()(torch.zeros(3, 32, 7))
    assert out.shape == (3, 2)


def test_resume_after_interruption_equals_a_straight_run(dataset: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = ("--epochs", "3", "--spec-augment", "--mixup", "0.2", "--patience", "50")
    assert _train(dataset, straight, *args) == 0

    calls = {"n": 0}

    def stop_at_step_11() -> int | None:  # mid-way through the second epoch
        calls["n"] += 1
        return 2 if calls["n"] >= 11 else None

    monkeypatch.setattr(signals, "pending", stop_at_step_11)
    assert _train(dataset, resumed, *args) == 130
    state = checkpoint.load(resumed / "checkpoints" / "last.pt", "train-state")
    assert state["epoch"] == 1 and state["batch"] > 0 and state["step"] == 11
    assert len(_rows(resumed)) == 1
    monkeypatch.undo()

    assert main(["-q", "train", "--resume", str(resumed)]) == 0
    a = checkpoint.load(straight / "checkpoints" / "last.pt", "train-state")
    b = checkpoint.load(resumed / "checkpoints" / "last.pt", "train-state")
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == 3
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=0, atol=1e-6, msg=name)
    for ra, rb in zip(_rows(straight), _rows(resumed), strict=True):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_file_f1"] == rb["val_file_f1"]
    best_a = checkpoint.load(straight / "best.pt", "model")
    best_b = checkpoint.load(resumed / "best.pt", "model")  # the rule is chosen alike
    assert best_a["epoch"] == best_b["epoch"]
    assert best_a["threshold"] == pytest.approx(best_b["threshold"], abs=1e-6)
    assert best_a["threshold_method"][:30] == best_b["threshold_method"][:30]


def test_resume_refuses_changed_settings_and_allows_more_epochs(dataset: Path, tmp_path: Path,
                                                                capsys) -> None:
    run = tmp_path / "run"
    assert _train(dataset, run, "--epochs", "1") == 0
    assert main(["train", "--resume", str(run), "--lr", "0.1"]) == 1
    assert "refused: lr" in capsys.readouterr().err
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2"]) == 0
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]


def test_a_run_started_before_augmentation_continues_as_it_began(dataset: Path,
                                                                  tmp_path: Path) -> None:
    """A last.pt whose config has no ``augment`` and no ``model.pool`` (written before
    they existed) resumes without augmentation and with its flattened head."""
    run = tmp_path / "run"
    assert _train(dataset, run, "--epochs", "1", "--augment", "none", "--pool",
                  "flatten") == 0
    last = run / "checkpoints" / "last.pt"
    state = checkpoint.load(last, "train-state")
    state["config"].pop("augment")
    state["config"]["model"].pop("pool")
    state.pop("format_version")
    checkpoint.save(last, state)
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2"]) == 0
    resumed = checkpoint.load(last, "train-state")["config"]
    assert resumed["augment"] == [] and resumed["model"]["pool"] == "flatten"
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]


def test_multiclass_with_auxiliary_head(tmp_path: Path) -> None:
    rec, ds, run = tmp_path / "rec", tmp_path / "ds", tmp_path / "run"
    synthesize(rec, SynthConfig(count=8, duration_s=1.0, sensors_per_label=3,
                                labels=("BACKGROUND", "CRACK", "LEAK", "NORMAL", "UNCLASSIFIED")))
    assert main(["-q", "build", str(rec), "--out", str(ds), "--workers", "1"]) == 0
    assert _train(ds, run, "--epochs", "1", "--positive", "LEAK,CRACK") == 0
    best = checkpoint.load(run / "best.pt", "model")
    assert best["task"] == "multiclass" and best["positive"] == ["LEAK", "CRACK"]
    model = LeakCNN(32, 7, 5, [1, 2], ModelConfig(width=8, dense=32))
    model.load_state_dict(best["model"])
    out = model.eval()(torch.zeros(4, 32, 7))
    assert out.shape == (4, 6)  # five classes and the leak-vs-rest logit
    p = model.leak_probability(out)
    assert p.shape == (4,) and ((p >= 0) & (p <= 1)).all()


def test_binary_leak_probability_sums_the_positive_classes() -> None:
    model = LeakCNN(32, 7, 2, [1], ModelConfig(width=4, dense=8))
    out = torch.tensor([[0.0, 0.0], [2.0, -2.0]])
    torch.testing.assert_close(model.leak_probability(out),
                               torch.softmax(out, 1)[:, 1])


@pytest.mark.parametrize("case,message", [
    ("missing", "dataset file missing"),
    ("corrupted", "TRAINING_DATASET.H5"),
    ("empty", "split is empty"),
    ("positive", "--positive CRACK: no such class"),
])
def test_bad_datasets_are_one_line(dataset: Path, tmp_path: Path, capsys, case: str,
                                   message: str) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    extra: list[str] = []
    if case == "missing":
        (ds / SPLIT_FILES["TRAINING"]).unlink()
    elif case == "corrupted":
        path = ds / SPLIT_FILES["TRAINING"]
        path.write_bytes(path.read_bytes()[:5000])
    elif case == "empty":
        with h5py.File(dataset / SPLIT_FILES["VALIDATION"], "r") as h5:
            labels = json.loads(h5.attrs["labels"])
        (ds / SPLIT_FILES["VALIDATION"]).unlink()
        writer = SplitWriter(ds / SPLIT_FILES["VALIDATION"], "VALIDATION", FeatureConfig(),
                             labels, {})
        os.replace(writer.finish(), ds / SPLIT_FILES["VALIDATION"])
    else:
        extra = ["--positive", "CRACK"]
    assert _train(ds, tmp_path / "run", "--epochs", "1", *extra) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("flags,message", [
    (["--seed", "-1"], "training seed must be in [0, 4294967295]"),
    (["--log-every", "0"], "log_every must be at least 1"),
    (["--weight-decay", "-1"], "weight_decay must be non-negative"),
    (["--loader-workers", "-1", "--preload", "no"], "loader_workers must be at least 0"),
    (["--time-budget", "-5"], "time_budget_s must be non-negative"),
    (["--warmup-epochs", "-1"], "warmup_epochs must be non-negative"),
    (["--focal-gamma", "-1"], "focal_gamma must be non-negative"),
    (["--grad-clip", "-1"], "grad_clip must be non-negative"),  # 0: off
])
def test_meaningless_settings_are_one_line(dataset: Path, tmp_path: Path, capsys,
                                           flags: list[str], message: str) -> None:
    assert _train(dataset, tmp_path / "run", "--epochs", "1", *flags) == 1
    one_line(capsys.readouterr().err, message)
    assert not (tmp_path / "run").exists()


def test_existing_run_is_kept_unless_resume_or_overwrite(dataset: Path, tmp_path: Path,
                                                         capsys) -> None:
    run = tmp_path / "run"
    assert _train(dataset, run, "--epochs", "1") == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert _train(dataset, run, "--epochs", "1") == 1
    assert "already holds a run" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert _train(dataset, run, "--epochs", "1", "--overwrite", "--seed", "4") == 0
    assert (run / "best.pt").read_bytes() != before[run / "best.pt"]


def test_a_run_that_failed_before_its_first_epoch_starts_again_in_place(
        dataset: Path, tmp_path: Path, capsys) -> None:
    """A start that failed (here on a dataset missing a split) leaves its log and no
    checkpoint: nothing to resume, so the same command with the fault fixed goes ahead
    instead of pointing at a --resume that cannot work; the log is continued."""
    ds, run = tmp_path / "ds", tmp_path / "run"
    shutil.copytree(dataset, ds)
    (ds / SPLIT_FILES["TRAINING"]).unlink()
    assert _train(ds, run, "--epochs", "1") == 1
    assert "dataset file missing" in capsys.readouterr().err
    (run / "train.log").write_text("the first start's log\n")  # (kept, not replaced)
    assert not (run / "checkpoints" / "last.pt").exists()
    assert _train(dataset, run, "--epochs", "1") == 0
    assert (run / "best.pt").is_file()
    assert (run / "train.log").read_text().startswith("the first start's log\n")


def test_resume_on_a_rebuilt_dataset_is_refused(dataset: Path, recordings: Path,
                                                tmp_path: Path, capsys) -> None:
    ds, run = tmp_path / "ds", tmp_path / "run"
    shutil.copytree(dataset, ds)
    assert _train(ds, run, "--epochs", "1") == 0
    assert main(["-q", "build", str(recordings), "--out", str(ds), "--overwrite",
                 "--n-mels", "24", "--workers", "1"]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 1
    assert "different feature config" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_with_two_gloo_processes(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["GLOO_SOCKET_IFNAME"] = "lo"  # all processes are local: no other interface needed
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "leakhunter", "-q", "train", str(dataset), "--out", str(run), "--epochs", "2",
         "--device", "cpu", *SMALL], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(run.rglob("*.pt"))) == 2  # one last.pt and one best.pt
    assert not list(run.rglob("*.tmp"))
    state = checkpoint.load(run / "checkpoints" / "last.pt", "train-state")
    assert state["epoch"] == 2
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]
    best = checkpoint.load(run / "best.pt", "model")  # rank 0 chose and wrote the rule
    assert best["threshold"] is not None and "VALIDATION" in best["threshold_method"]
    assert best["threshold_source"]["epoch"] == best["epoch"]


@pytest.mark.slow
def test_ddp_ranks_stop_together_when_their_clocks_disagree(dataset: Path,
                                                            tmp_path: Path) -> None:
    """A time budget is decided by rank 0's clock and shared: rank 1's clock (1000x fast
    here) says the budget is spent after epoch 1, rank 0's does not; were each rank to
    decide alone, rank 0 would wait in epoch 2's first collective for the other forever."""
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["GLOO_SOCKET_IFNAME"] = "lo"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(Path(__file__).parents[1] / "helpers" / "ddp_skewed_clock.py"), "-q", "train",
         str(dataset),
         "--out", str(run), "--epochs", "2", "--time-budget", "120", "--device", "cpu",
         *SMALL], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]  # rank 0's clock decided


def test_reading_from_disk_gives_the_same_run(dataset: Path, tmp_path: Path) -> None:
    assert _train(dataset, tmp_path / "mem", "--epochs", "1", "--preload", "yes") == 0
    assert _train(dataset, tmp_path / "disk", "--epochs", "1", "--preload", "no") == 0
    a = checkpoint.load(tmp_path / "mem" / "checkpoints" / "last.pt", "train-state")
    b = checkpoint.load(tmp_path / "disk" / "checkpoints" / "last.pt", "train-state")
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
def test_sigterm_saves_the_state_and_exits_143(dataset: Path, tmp_path: Path) -> None:
    import signal
    import time

    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "leakhunter", "-q", "train", str(dataset),
                             "--out", str(run), "--epochs", "500", *SMALL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.pt").exists():  # after the first epoch
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, proc.stderr.read()
    state = checkpoint.load(run / "checkpoints" / "last.pt", "train-state")
    assert 1 <= state["epoch"] < 500
    assert main(["-q", "train", "--resume", str(run), "--epochs", str(state["epoch"] + 1)]) == 0


def test_start_up_log_names_the_device(dataset: Path, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    from leakhunter.training.train import train

    with caplog.at_level(logging.INFO, logger="leakhunter"):
        train(dataset, tmp_path / "run", TrainConfig(epochs=1, device="cpu"))
    text = caplog.text
    assert "device: cpu (CPU, " in text and "threads" in text
    assert "automatic settings on cpu: batch size 256" in text
    assert "in host memory" in text


# --- killed, and resumed --------------------------------------------------------------------

@pytest.fixture(scope="module")
def straight_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs without interruption, as the killed runs are configured."""
    run = tmp_path_factory.mktemp("straight") / "run"
    assert main(["-q", "train", str(dataset), "--out", str(run), *TRAIN]) == 0
    return run


def _same_model(a: Path, b: Path) -> None:
    sa = checkpoint.load(a / "checkpoints" / "last.pt", "train-state")
    sb = checkpoint.load(b / "checkpoints" / "last.pt", "train-state")
    assert sa["epoch"] == sb["epoch"] and sa["step"] == sb["step"]
    for name, tensor in sa["model"].items():
        torch.testing.assert_close(sb["model"][name], tensor, rtol=0, atol=1e-6, msg=name)


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
    proc, _ = start_held(tmp_path, point, "train", str(dataset), "--out", str(run), *TRAIN)
    assert kill_and_check_orphans(proc) >= workers_expected
    state = checkpoint.load(run / "checkpoints" / "last.pt", "train-state")
    assert state["epoch"] == 1 and state["batch"] == 0  # the last complete checkpoint
    assert main(["-q", "train", "--resume", str(run)]) == 0
    _same_model(straight_run, run)
    assert temps(run) == []


# --- full disk and I/O errors at every write site -------------------------------------------

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
    fail_writes(monkeypatch, "last.pt.tmp", number)
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2"]) == 1
    one_line(capsys.readouterr().err, str(last), "writing the checkpoint", REASON[number],
             "needed ")
    assert last.read_bytes() == before and temps(run) == []
    monkeypatch.undo()
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2"]) == 0
    assert checkpoint.load(last, "train-state")["epoch"] == 2


@pytest.mark.parametrize("pattern", ["config.json.tmp", "best.pt.tmp", "model_meta.json.tmp",
                                     "metrics.csv.tmp", ".curves.png.tmp"])
def test_train_write_failures_are_one_line(dataset: Path, tmp_path: Path, capsys,
                                           monkeypatch: pytest.MonkeyPatch,
                                           pattern: str) -> None:
    run = tmp_path / "run"
    fail_writes(monkeypatch, pattern, errno.ENOSPC)
    assert main(["-q", "train", str(dataset), "--out", str(run), *SMALL, "--epochs", "1"]) == 1
    one_line(capsys.readouterr().err, pattern.strip(".").replace(".tmp", ""),
             REASON[errno.ENOSPC])
    assert temps(run) == []


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


# --- one writer per folder ------------------------------------------------------------------

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
            one_line(capsys.readouterr().err, f"in use by PID {holder.pid}",
                     "'leakhunter train ds --out run'")
        # readers take no lock: the model still loads while the run is held
        assert checkpoint.load(run / "best.pt", "model")["kind"] == "model"
    finally:
        holder.communicate("", timeout=30)
    assert main(["-q", "train", "--resume", str(run), "--epochs", "2"]) == 0
