"""`leakhunter tune`: tiny studies through the real CLI and train, resume, pruning,
failures, two processes on one SQLite file, Ctrl-C, a killed process (heartbeats),
multi-objective, bad input."""

from __future__ import annotations

import csv
import logging
import os
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch

from leakhunter.cli import main
from leakhunter.config import BuildConfig, SynthConfig, TrainConfig, from_dict, to_dict
from leakhunter.dataset.build import build_dataset
from leakhunter.errors import ConfigError
from leakhunter.model.card import load_model
from leakhunter.model.cnn import count_parameters
from leakhunter.recordings.synth.synth import synthesize
from leakhunter.runtime import signals
from leakhunter.training import batches
from leakhunter.tune import heartbeat
from leakhunter.tune.cost import inference_cost
from leakhunter.tune.outputs import to_toml, write_progress
from leakhunter.tune.space import SPACE, load_space
from leakhunter.tune.study import open_storage

RUNNING, WAITING = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING
COMPLETE, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL

# tiny models and one or two epochs: a trial takes about a second
SMALL = ["--width", "8", "--dense", "32", "--batch-size", "32", "--blocks", "2",
         "--log-every", "2"]


@pytest.fixture(scope="module")
def easy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset a good setting learns in one epoch (validation file F1 1.0), so a planted
    bad setting is measurably worse. Read-only."""
    root = tmp_path_factory.mktemp("tune")
    synthesize(root / "rec", SynthConfig(count=8, duration_s=2.0, sensors_per_label=4,
                                         out_of_water=0, difficulty=0.0, seed=1))
    build_dataset(root / "rec", root / "ds", BuildConfig(workers=1))
    return root / "ds"


@pytest.fixture
def lr_only(tmp_path: Path) -> Path:
    """A --space file that searches the learning rate alone, in a range that learns."""
    path = tmp_path / "space.toml"
    text = "[lr]\nlow = 2e-3\nhigh = 1e-2\n"
    text += "".join(f"[{p.name}]\noff = true\n" for p in SPACE
                    if p.name not in ("lr", "width", "dense", "batch_size", "blocks"))
    path.write_text(text)
    return path


def _tune(dataset: Path, out: Path, *extra: str) -> int:
    return main(["-q", "tune", str(dataset), "--out", str(out), *SMALL, *extra])


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="leakhunter", storage=f"sqlite:///{out / 'study.db'}")


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_study_writes_outputs_best_config_trains_rerun_continues_restart_deletes(
        easy: Path, tmp_path: Path, lr_only: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "study"
    # wide enough to hold train's automatic rate at batch 32: 2e-3 * sqrt(32 / 256)
    lr_only.write_text(lr_only.read_text().replace("low = 2e-3", "low = 5e-4"))
    assert _tune(easy, out, "--trials", "3", "--epochs", "1", "--space", str(lr_only)) == 0
    study = _study(out)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    rows = _rows(out)
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert {r["state"] for r in rows} == {"complete"} and all(r["epochs"] == "1" for r in rows)
    assert all(5e-4 <= float(r["lr"]) <= 1e-2 for r in rows)
    # a new study starts from the train defaults: the baseline it has to beat
    assert study.trials[0].user_attrs["baseline"] and rows[0]["note"] == "baseline"
    assert study.trials[0].params == {"lr": pytest.approx(2e-3 * (32 / 256) ** 0.5)}
    best = study.best_trial
    assert float(rows[best.number]["val_file_f1"]) == pytest.approx(best.value, abs=1e-6)
    # only the best trial's run directory is kept
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"trial-{best.number:04d}"]
    for name in ("history.png", "parallel_coordinates.png"):
        assert (out / "plots" / name).stat().st_size > 1000, name
    # importances need the objective to vary between trials
    varied = len({t.value for t in study.trials}) > 1
    assert (out / "plots" / "importances.png").exists() == varied

    # best_config.toml is the best trial's settings and train accepts it as it is
    config = tomllib.loads((out / "best_config.toml").read_text())
    assert config["lr"] == pytest.approx(best.params["lr"])
    assert config["model"]["width"] == 8 and config["epochs"] == 1
    run = tmp_path / "run"
    assert main(["-q", "train", str(easy), "--out", str(run), "--config",
                 str(out / "best_config.toml")]) == 0
    assert (run / "best.pt").is_file()

    # the same command again continues the study: more trials, none repeated
    assert _tune(easy, out, "--trials", "2", "--epochs", "1", "--space", str(lr_only)) == 0
    trials = _study(out).trials
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert len({t.params["lr"] for t in trials}) == 5
    assert len(_rows(out)) == 5

    # --restart says what it deletes, then starts over
    capsys.readouterr()
    assert main(["tune", str(easy), "--out", str(out), *SMALL, "--trials", "1", "--epochs",
                 "1", "--space", str(lr_only), "--restart"]) == 0
    err = capsys.readouterr().err
    assert "--restart: deleting study 'leakhunter' (5 trial(s))" in err
    assert "trials.csv" in err and "best_config.toml" in err
    assert [t.number for t in _study(out).trials] == [0]


def test_a_planted_bad_trial_is_pruned(easy: Path, tmp_path: Path, lr_only: Path) -> None:
    out = tmp_path / "study"
    prune = ["--epochs", "2", "--space", str(lr_only), "--pruner-startup-trials", "2",
             "--pruner-warmup-epochs", "0"]
    assert _tune(easy, out, "--trials", "2", *prune) == 0
    assert all(t.value == 1.0 for t in _study(out).trials)  # the good ones learn it
    _study(out).enqueue_trial({"lr": 1e-7})  # learns nothing in two epochs
    assert _tune(easy, out, "--trials", "1", *prune) == 0
    planted = _study(out).trials[2]
    assert planted.params["lr"] == 1e-7
    assert planted.state == optuna.trial.TrialState.PRUNED
    assert planted.user_attrs["epochs"] == 1 and list(planted.intermediate_values) == [1]
    assert not (out / "trials" / "trial-0002").exists()
    row = _rows(out)[2]
    assert row["state"] == "pruned" and row["note"].startswith("pruned after epoch 1")


def test_failed_trials_are_recorded_and_the_study_goes_on(
        easy: Path, tmp_path: Path, lr_only: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import leakhunter.tune.trials as trials_module

    real_loss, real_train = batches.per_sample_loss, trials_module.train
    calls = {"train": 0}

    def nan_in_first_trial(*args, **kwargs):  # an unstable setting: the loss turns NaN
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["train"] == 1 else loss

    def out_of_memory_in_second_trial(*args, **kwargs):
        calls["train"] += 1
        if calls["train"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(batches, "per_sample_loss", nan_in_first_trial)
    monkeypatch.setattr(trials_module, "train", out_of_memory_in_second_trial)
    out = tmp_path / "study"
    assert _tune(easy, out, "--trials", "3", "--epochs", "1", "--space", str(lr_only)) == 0
    states = [t.state for t in _study(out).trials]
    fail, done = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE
    assert states == [fail, fail, done]
    rows = _rows(out)
    assert "training loss is nan at epoch 1" in rows[0]["note"]
    assert "out of memory" in rows[1]["note"]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-0002"]


def test_two_processes_share_one_sqlite_study(easy: Path, tmp_path: Path,
                                              lr_only: Path) -> None:
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "leakhunter", "-q", "tune", str(easy), "--out", str(out),
           *SMALL, "--trials", "2", "--epochs", "1", "--space", str(lr_only)]
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = _study(out).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in trials)
    assert len({t.params["lr"] for t in trials}) == 4  # distinct draws
    assert len(_rows(out)) == 4


def test_ctrl_c_fails_the_running_trial_and_queues_it_again(
        easy: Path, tmp_path: Path, lr_only: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "study"
    calls = {"n": 0}

    def stop_in_the_second_trial() -> int | None:
        calls["n"] += 1  # one check per training step; a trial has 4 steps
        return 2 if calls["n"] >= 6 else None

    monkeypatch.setattr(signals, "pending", stop_in_the_second_trial)
    assert _tune(easy, out, "--trials", "3", "--epochs", "1", "--space", str(lr_only)) == 130
    monkeypatch.undo()
    trials = _study(out).trials
    interrupted = trials[1]
    assert interrupted.state == optuna.trial.TrialState.FAIL
    assert interrupted.user_attrs["failure"].startswith("interrupted")
    assert trials[2].state == optuna.trial.TrialState.WAITING  # queued, none "running"
    assert not (out / "trials" / "trial-0001").exists()
    assert _tune(easy, out, "--trials", "1", "--epochs", "1", "--space", str(lr_only)) == 0
    retried = _study(out).trials[2]
    assert retried.state == optuna.trial.TrialState.COMPLETE
    assert retried.params == interrupted.params
    rows = _rows(out)  # read like a dead process's trial and its retry
    assert rows[1]["note"] == "interrupted (SIGINT); retried as trial 2"
    assert rows[2]["note"] == "retry of trial 1"


def _age_heartbeats(db: Path, seconds: int) -> None:
    """As if ``seconds`` had passed since each trial's last heartbeat in the study database
    ``db`` (Optuna's ``trial_heartbeats`` table): a dead process's trial is then past any
    grace period, without the test waiting for it."""
    with sqlite3.connect(db) as con:
        con.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?)",
                    (f"-{seconds} seconds",))
    con.close()


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    """Poll until ``path`` exists; fail if ``proc`` ends first or the deadline passes."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, f"tune ended (exit {proc.returncode}) before {path}"
        assert time.monotonic() < deadline, f"no {path} after {seconds:g} s"
        time.sleep(0.05)


def test_a_killed_trial_is_failed_retried_once_and_the_baseline_gets_its_value(
        easy: Path, tmp_path: Path, lr_only: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "study"
    # many epochs: the baseline trial is still training when it is killed
    cmd = [sys.executable, "-m", "leakhunter", "-q", "tune", str(easy), "--out", str(out),
           *SMALL, "--trials", "2", "--epochs", "50", "--space", str(lr_only)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _wait_for(out / "trials" / "trial-0000" / "train.log", proc)
    finally:
        proc.kill()  # SIGKILL: the process tells the study nothing
        proc.wait(timeout=60)
    killed = _study(out).trials[0]
    assert killed.state == RUNNING and killed.user_attrs["baseline"]

    _age_heartbeats(out / "study.db", 3600)  # the default grace period (180 s) is over
    capsys.readouterr()
    assert main(["tune", str(easy), "--out", str(out), *SMALL, "--trials", "2", "--epochs",
                 "1", "--space", str(lr_only)]) == 0
    err = capsys.readouterr().err
    trials = _study(out).trials
    assert [t.state for t in trials] == [FAIL, COMPLETE, COMPLETE]  # none left running
    retry = trials[1]
    assert retry.user_attrs["retry_of"] == 0 and retry.params == killed.params
    assert retry.user_attrs["baseline"] and not trials[2].user_attrs.get("baseline")
    rows = _rows(out)
    assert rows[0]["state"] == "failed"
    assert rows[0]["note"] == ("process died (no heartbeat for over 180 s); retried as "
                               "trial 1; baseline")
    assert rows[1]["note"] == "retry of trial 0; baseline" and rows[1]["val_file_f1"]
    assert "trial 0 failed: process died (no heartbeat for over 180 s)" in err
    assert "3 trial(s): 2 complete, 0 pruned, 1 failed" in err
    assert not (out / "trials" / "trial-0000").exists()  # the dead run's folder is gone

    # continuing the study neither queues nor trains the baseline again
    assert _tune(easy, out, "--trials", "1", "--epochs", "1", "--space", str(lr_only)) == 0
    trials = _study(out).trials
    assert len(trials) == 4 and all(t.state == COMPLETE for t in trials[1:])
    assert [t.number for t in trials if t.user_attrs.get("baseline")] == [0, 1]


def test_a_trial_whose_heartbeat_stops_is_failed_and_retried_once_not_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat, "GRACE_S", 1)  # read by open_storage
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.enqueue_trial({"lr": 1e-3}, user_attrs={"baseline": True})

    def start() -> optuna.Trial:  # what the runner does before training
        with heartbeat.quiet():
            trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        return trial

    def states() -> dict[int, optuna.trial.TrialState]:
        return {t.number: t.state for t in study.trials}

    dead, alive = start(), start()
    with heartbeat.Beating(storage, study, dead.number):
        pass  # one heartbeat, then its process "dies": no more, and no tell
    # the live trial beats on for longer than the grace period and is not called dead
    with heartbeat.Beating(storage, study, alive.number, interval_s=0.2):
        deadline = time.monotonic() + 15
        while states()[dead.number] == RUNNING:
            assert time.monotonic() < deadline, "the dead trial was never failed"
            heartbeat.fail_dead_trials(study)
            time.sleep(0.1)
        assert states()[alive.number] == RUNNING
        alive.set_user_attr("train_config", {"lr": alive.params["lr"]})
        study.tell(alive, 0.5)
    heartbeat.fail_dead_trials(study)  # a second check (another process) changes nothing
    assert states() == {0: FAIL, 1: COMPLETE, 2: WAITING}
    assert study.trials[2].user_attrs == {"retry_of": 0, "baseline": True, "deaths": 1}

    # the retry (asked before any new trial) has the same settings; its process dies too:
    # failed, and not retried a second time
    retry = start()
    assert retry.number == 2 and retry.params == dead.params == {"lr": 1e-3}
    with heartbeat.Beating(storage, study, 2):
        pass
    _age_heartbeats(tmp_path / "study.db", 3600)
    heartbeat.fail_dead_trials(study)
    assert states() == {0: FAIL, 1: COMPLETE, 2: FAIL}
    write_progress(study, tmp_path, ["val_file_f1"], set())
    notes = [r["note"] for r in _rows(tmp_path)]
    assert notes == ["process died (no heartbeat for over 1 s); retried as trial 2; baseline",
                     "", "process died (no heartbeat for over 1 s); not retried again (its "
                     "settings were retried once already); retry of trial 0; baseline"]


def test_heartbeats_beat_apart_from_the_work_and_stop_with_the_trial(
        caplog: pytest.LogCaptureFixture) -> None:
    beats: list[int] = []

    class Storage:  # the RDB storage's heartbeat methods; the second beat fails
        def get_study_id_from_name(self, name: str) -> int:
            return 7

        def get_trial_id_from_study_id_trial_number(self, study_id: int, number: int) -> int:
            return 100 * study_id + number

        def record_heartbeat(self, trial_id: int) -> None:
            beats.append(trial_id)
            if len(beats) == 2:
                raise OSError("database is locked")

    caplog.set_level(logging.WARNING, logger="leakhunter.tune.heartbeat")
    with pytest.raises(KeyboardInterrupt):  # however the trial ends, its thread ends
        with heartbeat.Beating(Storage(), SimpleNamespace(study_name="s"), 3,
                               interval_s=0.01) as beating:
            assert beats == [703]  # the first beat before any work
            deadline = time.monotonic() + 10
            while len(beats) < 5:  # a failed beat is logged and the next one comes
                assert time.monotonic() < deadline
                time.sleep(0.01)
            raise KeyboardInterrupt
    assert not beating.thread.is_alive()
    assert "trial heartbeat not recorded (database is locked)" in caplog.text


def test_multi_objective_reports_a_pareto_front(easy: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "study"
    space = tmp_path / "space.toml"
    space.write_text("[width]\nchoices = [4, 16]\n" + "".join(
        f"[{p.name}]\noff = true\n" for p in SPACE if p.name not in ("width", "lr")))
    config = tmp_path / "tune.toml"  # tune settings at the top, fixed train settings below
    config.write_text('trials = 3\nepochs = 1\nobjective = "f1,params"\n'
                      "target_specificity = 0.9\n[train]\nbatch_size = 32\n"
                      "[train.model]\ndense = 32\n")
    args = ["-q", "tune", str(easy), "--out", str(out), "--config", str(config), "--space",
            str(space)]
    assert main(args) == 0
    study = _study(out)
    assert len(study.trials) == 3
    for t in study.trials:
        settings = t.user_attrs["train_config"]
        assert settings["batch_size"] == 32 and settings["model"]["dense"] == 32
        assert settings["epochs"] == 1 and set(t.params) == {"width", "lr"}
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = {t.number for t in study.best_trials}
    assert front and all(len(t.values) == 2 for t in study.trials)
    for t in study.trials:  # the cost is the model's parameter count, measured
        assert t.values[1] == t.user_attrs["parameters"] > 0
        assert t.user_attrs["val_specificity"] >= 0.9 or t.values[0] == 0.0
    assert sorted(p.stem for p in (out / "pareto").glob("*.toml")) == \
        sorted(f"trial-{n:04d}" for n in front)
    assert {int(p.name[6:]) for p in (out / "trials").iterdir()} == front
    assert (out / "plots" / "pareto_front.png").stat().st_size > 1000
    # a continued study cannot change a parameter's choices: one line, the trial recorded
    space.write_text(space.read_text().replace("[4, 16]", "[4, 8]"))
    assert main(args) == 1
    assert "the search space no longer fits study 'leakhunter'" in \
        capsys.readouterr().err
    assert _study(out).trials[-1].state == optuna.trial.TrialState.FAIL
    kept = study.trials[min(front)]
    cost = inference_cost(Path(kept.user_attrs["run_dir"]) / "best.pt")
    model, _ = load_model(Path(kept.user_attrs["run_dir"]) / "best.pt")
    assert cost["parameters"] == count_parameters(model) == kept.values[1]
    assert 0 < cost["latency_us"] < 1e6 and kept.user_attrs["latency_us"] > 0
    assert "val_sensitivity_at_specificity_0.9" in _rows(out)[0]


def test_space_file_narrows_widens_and_fixed_settings_are_not_searched(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text("[lr]\nlow = 1e-5\nhigh = 1e-1\n[width]\nchoices = [4, 8]\n"
                    "[mixup]\noff = true\n")
    space = {p.name: p for p in load_space(path, fixed={"model.dropout"})}
    assert (space["lr"].low, space["lr"].high) == (1e-5, 1e-1)
    assert space["width"].kind == "choice" and space["width"].choices == (4, 8)
    assert "mixup" not in space and "dropout" not in space
    path.write_text("[dropout]\nlow = 0.1\nhigh = 1.5\n")
    with pytest.raises(ConfigError, match=r"\[dropout\]: 1.5 is not a valid dropout"):
        load_space(path, set())


def test_best_config_toml_round_trips_every_train_setting() -> None:
    cfg = TrainConfig(lr=3.5e-5, positive=("LEAK", "CRACK"), spec_augment=True)
    assert from_dict(TrainConfig, tomllib.loads(to_toml(to_dict(cfg)))) == cfg


def test_bad_input_is_one_line(easy: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                               multiclass_run: tuple[Path, Path, Path]) -> None:
    space = tmp_path / "space.toml"
    space.write_text("[learning_rate]\nlow = 1e-4\nhigh = 1e-2\n")
    cases = [
        (["--space", str(space)], "unknown parameter 'learning_rate'"),
        (["--storage", f"sqlite:///{tmp_path}/no/such/folder/study.db"],
         "cannot open the study database"),
        (["--storage", "postgresql://leak:secret@127.0.0.1:9/tuning"],
         "cannot open the study database"),
        (["--positive", "BURST"], "--positive BURST: no such class"),
    ]
    for extra, message in cases:
        assert _tune(easy, tmp_path / "s1", "--trials", "1", *extra) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert "secret" not in err
    # a study made on one dataset is not continued on a dataset of other classes
    out = tmp_path / "s2"
    assert _tune(easy, out, "--trials", "0") == 0
    _, multiclass, _ = multiclass_run
    assert _tune(multiclass, out, "--trials", "1") == 1
    err = capsys.readouterr().err.strip()
    assert "was made for classes LEAK, NOLEAK, not BACKGROUND, CRACK, LEAK" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("flags,message", [
    (["--seed", "-1"], "seed must be in [0, 4294967295]"),
    (["--seed", "4294967296"], "seed must be in [0, 4294967295]"),
    (["--weight-decay", "-1"], "weight_decay must be non-negative"),  # a fixed train flag
])
def test_meaningless_settings_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           flags: list[str], message: str) -> None:
    assert _tune(tmp_path / "ds", tmp_path / "s", "--trials", "1", *flags) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2"])
def test_every_seed_seeds_every_trial(sampler: str) -> None:
    """Trial n's sampler is seeded from (seed, n) within the seeds' range, up to the
    largest seed."""
    from leakhunter.config import TuneConfig
    from leakhunter.tune.study import _SeededPerTrial

    for seed in (0, 5000, 2**32 - 1):
        study = optuna.create_study(sampler=_SeededPerTrial(TuneConfig(seed=seed,
                                                                       sampler=sampler), False))
        for _ in range(2):
            study.ask().suggest_float("x", 0.0, 1.0)


def test_on_epoch_hook_stops_train_with_a_consistent_run(easy: Path, tmp_path: Path) -> None:
    from leakhunter.config import ModelConfig
    from leakhunter.model import checkpoint
    from leakhunter.training.train import train

    class Stop(Exception):
        pass

    seen = []

    def stop_after_first(epoch: int, row: dict) -> None:
        seen.append((epoch, row["val_file_f1"]))
        raise Stop

    run = tmp_path / "run"
    cfg = TrainConfig(epochs=3, batch_size=32, model=ModelConfig(width=8, dense=32, blocks=2))
    with pytest.raises(Stop):
        train(easy, run, cfg, on_epoch=stop_after_first)
    assert [e for e, _ in seen] == [1] and 0.0 <= seen[0][1] <= 1.0
    with (run / "metrics.csv").open() as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1"]
    assert checkpoint.load(run / "checkpoints" / "last.pt", "train-state")["epoch"] == 1
    assert (run / "best.pt").is_file()
    assert train(None, run, cfg, resume=True)["epochs"] == 3  # and it resumes from there


def test_hyperband_pruner_and_latency_objective_run(easy: Path, tmp_path: Path,
                                                    lr_only: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "hyperband"
    assert main(["tune", str(easy), "--out", str(out), *SMALL, "--trials", "2", "--epochs",
                 "2", "--space", str(lr_only), "--pruner", "hyperband"]) == 0
    assert "pruner HyperbandPruner" in capsys.readouterr().err
    study = _study(out)
    assert len(study.trials) == 2 and all(t.state.is_finished() for t in study.trials)
    out = tmp_path / "latency"
    assert _tune(easy, out, "--trials", "2", "--epochs", "1", "--space", str(lr_only),
                 "--objective", "f1,latency") == 0
    for t in _study(out).trials:  # the cost is the measured time per segment
        assert t.values[1] == t.user_attrs["latency_us"] > 0
    assert "latency_us" in _rows(out)[0] and (out / "plots" / "pareto_front.png").exists()


def test_a_trial_declared_dead_while_it_runs_is_dropped_and_the_run_goes_on(
        easy: Path, tmp_path: Path, lr_only: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    import leakhunter.tune.trials as trials_module

    real_train = trials_module.train
    out = tmp_path / "study"

    def declared_dead_in_the_first_trial(dataset, run, cfg, **kwargs):
        if run.name == "trial-0000":  # another process finds its heartbeats lost meanwhile
            storage = open_storage(f"sqlite:///{out / 'study.db'}")
            study = optuna.load_study(study_name="leakhunter", storage=storage)
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                storage.get_study_id_from_name("leakhunter"), 0)
            storage.set_trial_state_values(trial_id, FAIL)
            heartbeat.RetryDead(heartbeat.GRACE_S)(study, storage.get_trial(trial_id))
        return real_train(dataset, run, cfg, **kwargs)

    monkeypatch.setattr(trials_module, "train", declared_dead_in_the_first_trial)
    assert main(["tune", str(easy), "--out", str(out), *SMALL, "--trials", "2", "--epochs",
                 "1", "--space", str(lr_only)]) == 0
    assert "trial 0 was declared dead by another process while it still ran" in \
        capsys.readouterr().err
    trials = _study(out).trials
    assert [t.state for t in trials] == [FAIL, COMPLETE]  # its retry ran, once
    assert trials[1].user_attrs["retry_of"] == 0 and trials[1].params == trials[0].params
    assert not (out / "trials" / "trial-0000").exists()


@pytest.mark.parametrize("objective, column", [
    (["val_file_f1"], "0.4"),  # a pruned trial's last report is of the objective: shown
    (["val_sensitivity_at_specificity_0.9"], ""),  # of another figure (F1): left blank
    (["val_file_f1", "parameters"], "0.4")])
def test_trials_csv_names_each_column_once_and_only_the_objective_under_its_name(
        tmp_path: Path, objective: list[str], column: str) -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from leakhunter.tune.outputs import write_progress

    study = optuna.create_study(directions=["maximize"] + ["minimize"] * (len(objective) - 1))
    study.add_trial(create_trial(
        state=TrialState.PRUNED, params={"lr": 0.001},
        distributions={"lr": FloatDistribution(1e-4, 1e-2, log=True)},
        intermediate_values={1: 0.4}, user_attrs={"epochs": 1, "parameters": 19226}))
    write_progress(study, tmp_path, objective, set())
    with (tmp_path / "trials.csv").open() as fh:
        header = next(csv.reader(fh))
    assert len(header) == len(set(header)) and "parameters" in header
    [row] = _rows(tmp_path)
    assert row[objective[0]] == column and row["parameters"] == "19226"
