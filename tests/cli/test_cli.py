"""The command line end to end: help, version, synth -> build -> info, signals, errors in one
line (an unexpected OS error; --device cuda where there is none), and the whole pipeline on
a real GPU."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from leakhunter import __version__
from leakhunter.cli import build_parser, main
from leakhunter.cli.flags import CFG, TRAIN
from leakhunter.config import SynthConfig
from leakhunter.dataset import build as build_module
from leakhunter.recordings.synth.synth import synthesize
from leakhunter.runtime.device_policy import auto_help

from ..helpers.faults import one_line

COMMANDS = {"synth", "synth-pairs", "build", "info", "train", "evaluate", "calibrate", "predict",
            "export", "report", "locate", "learn", "tune", "study", "demo"}
DEVICE_COMMANDS = {"build", "train", "evaluate", "calibrate", "predict", "export", "learn",
                   "locate", "study", "demo"}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, as ``build_parser`` really makes them."""
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags of ``parser``: not positionals, not -h."""
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def test_the_walk_finds_every_command() -> None:
    assert set(subparsers()) == COMMANDS


def test_switches_say_their_default_in_words() -> None:
    """``--no-X`` flags say what happens without them ("default: X"), not "default: True",
    which reads as "no X by default"; other switches say on or off."""
    seen = set()
    for command, sub in subparsers().items():
        for action in options(sub):
            if not isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                continue
            said = action.help.rsplit("(default: ", 1)[-1].rstrip(")")
            assert said not in ("True", "False"), (command, action.option_strings)
            flag = action.option_strings[0]
            if flag.startswith("--no-") and not action.dest.startswith(TRAIN):  # train's
                assert flag.removeprefix("--no-").replace("-", " ") in said, (command, flag)
                seen.add(flag)
    assert {"--no-adapt", "--no-detrend", "--no-class-weights", "--no-baseline"} <= seen


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_has_help_and_a_default(command: str, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    sub = subparsers()[command]
    assert options(sub)
    for action in options(sub):
        assert action.help and "(default:" in action.help, action.option_strings


def test_device_is_declared_once_with_what_auto_means(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """--device in exactly the commands that use a device, each saying what auto picks
    there; tune shows train's own --device among the train settings a study can fix."""
    parsers = subparsers()
    shown = set()
    for name in parsers:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        if "--device" in capsys.readouterr().out:
            shown.add(name)
    assert shown == DEVICE_COMMANDS | {"tune"}
    device = {name: next(a for a in options(parsers[name]) if "--device" in a.option_strings)
              for name in shown}
    for name in DEVICE_COMMANDS:
        assert auto_help(None if name == "demo" else name) in device[name].help, name
        assert device[name].help.endswith("(default: auto)"), name
    assert device["tune"].dest == TRAIN + "device"
    assert device["tune"].help == device["train"].help
    # a config field where the command's config has one (--config sets it too; absent from
    # the namespace unless given), else a plain args.device
    for name in DEVICE_COMMANDS:
        in_config = name in ("build", "train", "learn", "locate", "study")
        dest = "train.device" if name == "study" else "device"  # a study's runs train
        assert device[name].dest == (CFG + dest if in_config else "device"), name
        assert device[name].default == (argparse.SUPPRESS if in_config else "auto"), name


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"leakhunter {__version__}"


NOISY = """
import argparse, sys
from leakhunter import cli

def noisy(args):
    for i in range(200000):
        print("line", i)
    return 0

class Parser:
    def parse_args(self, argv):
        return argparse.Namespace(verbose=False, quiet=True, debug=False, func=noisy)

cli.build_parser = Parser
sys.exit(cli.main([]))
"""


def test_output_piped_into_a_reader_that_stops_ends_quietly() -> None:
    """`leakhunter ... | head -1`: once the reader has gone, the command stops with the
    shell's code for it (141), and neither an error line nor Python's noise at exit."""
    proc = subprocess.Popen([sys.executable, "-c", NOISY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
    assert proc.stderr.read() == b""


def test_synth_build_info_through_the_cli(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rec, ds = tmp_path / "rec", tmp_path / "ds"
    assert main(["synth", str(rec), "--count", "10", "--duration", "1.5", "--sensors", "4",
                 "--seed", "3"]) == 0
    assert "wrote 20 recordings" in capsys.readouterr().out
    assert main(["-q", "build", str(rec), "--out", str(ds), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "TRAINING" in out and "dataset written to" in out
    assert main(["info", str(ds)]) == 0
    assert "integrity: OK" in capsys.readouterr().out
    # the same seed again refuses a non-empty folder, and --overwrite rewrites it
    assert main(["synth", str(rec), "--count", "10"]) == 1
    assert main(["synth", str(rec), "--count", "10", "--duration", "1.5", "--overwrite"]) == 0


def test_multiclass_build(tmp_path: Path) -> None:
    rec, ds = tmp_path / "rec", tmp_path / "ds"
    assert main(["synth", str(rec), "--multiclass", "--count", "8", "--duration", "1",
                 "--sensors", "3"]) == 0
    assert main(["build", str(rec), "--out", str(ds), "--workers", "1"]) == 0
    labels = json.loads((ds / "labels.json").read_text())["labels"]
    assert labels == ["BACKGROUND", "CRACK", "LEAK", "NORMAL", "UNCLASSIFIED"]


def _run_and_signal(rec: Path, out: Path, sig: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "leakhunter", "-q", "build", str(rec),
                             "--out", str(out), "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.partial")):  # wait until the features pass writes
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


@pytest.fixture(scope="module")
def many_recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("many") / "rec"
    synthesize(root, SynthConfig(count=150, seed=1))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,workers", [(signal.SIGTERM, 143, 1),
                                              (signal.SIGINT, 130, 2)])
def test_signal_during_build_leaves_no_dataset(many_recordings: Path, tmp_path: Path,
                                               sig: int, code: int, workers: int) -> None:
    out = tmp_path / "out"
    proc = _run_and_signal(many_recordings, out, sig, workers)
    err = proc.stderr.read()
    assert proc.returncode == code, err
    assert "partial output removed" in err and "Traceback" not in err
    assert not out.exists()  # the folder build made goes with its partial files


@pytest.mark.slow
def test_killed_build_looks_unfinished_and_next_build_recovers(many_recordings: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run_and_signal(many_recordings, out, signal.SIGKILL, 1)
    names = sorted(p.name for p in out.iterdir() if p.name != ".leakhunter.lock")  # not held
    assert names and all(n.endswith(".partial") for n in names)
    assert main(["info", str(out)]) == 1
    assert main(["-q", "build", str(many_recordings), "--out", str(out)]) == 0
    assert not list(out.glob("*.partial"))
    assert main(["info", str(out), "--no-check"]) == 0


def test_log_lines_carry_elapsed_time_and_respect_levels(recordings: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import re

    assert main(["build", str(recordings), "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^\[ +\d+\.\ds\] found 24 recordings", err, re.M)
    assert "\033[" not in err  # no colour when stderr is not a terminal
    assert main(["build", str(recordings), "--out", str(tmp_path / "b"), "--workers", "1",
                 "-q"]) == 0
    assert "found 24 recordings" not in capsys.readouterr().err
    monkeypatch.setenv("LEAKHUNTER_LOG_LEVEL", "WARNING")
    assert main(["build", str(recordings), "--out", str(tmp_path / "w"), "--workers", "1"]) == 0
    assert "found 24 recordings" not in capsys.readouterr().err
    monkeypatch.setenv("LEAKHUNTER_LOG_LEVEL", "DEBUG")
    assert main(["build", str(recordings), "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    assert "found 24 recordings" in capsys.readouterr().err


def test_unexpected_os_error_is_still_one_line(tmp_path: Path, capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "x"))

    monkeypatch.setattr(build_module, "discover", broken)
    assert main(["build", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    one_line(capsys.readouterr().err, str(tmp_path / "x"), "Permission denied [EACCES]")


def test_every_command_refuses_cuda_in_one_line(
        recordings: Path, dataset: Path, trained_run: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = str(trained_run / "best.pt")
    for argv in (["build", str(recordings), "--out", str(tmp_path / "b")],
                 ["train", str(dataset), "--out", str(tmp_path / "t"), "--epochs", "1"],
                 ["evaluate", model, str(dataset), "--out", str(tmp_path / "e")],
                 ["predict", model, str(recordings), "--out", str(tmp_path / "p.csv")],
                 ["export", model, "--out", str(tmp_path / "m.onnx")],
                 ["demo", "--out", str(tmp_path / "d")]):
        assert main([*argv, "--device", "cuda"]) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--device cuda: CUDA is not available" in err, err


# --- on a real GPU --------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_whole_pipeline_on_cuda(recordings: Path, tmp_path: Path) -> None:
    import csv

    ds, run, model = tmp_path / "ds", tmp_path / "run", str(tmp_path / "run" / "best.pt")
    assert main(["-q", "build", str(recordings), "--out", str(ds), "--device", "cuda"]) == 0
    assert main(["-q", "train", str(ds), "--out", str(run), "--epochs", "1", "--device",
                 "cuda", "--width", "8", "--dense", "32"]) == 0
    with (run / "metrics.csv").open() as fh:
        assert float(next(csv.DictReader(fh))["gpu_memory_peak_gib"]) > 0
    assert main(["-q", "evaluate", model, str(ds), "--device", "cuda"]) == 0
    rows = {}
    for device in ("cuda", "cpu"):
        out = tmp_path / f"{device}.csv"
        assert main(["-q", "predict", model, str(recordings), "--out", str(out),
                     "--device", device]) == 0
        with out.open() as fh:
            rows[device] = list(csv.DictReader(fh))
    for gpu, cpu in zip(rows["cuda"], rows["cpu"]):
        assert gpu["path"] == cpu["path"] and gpu["status"] == cpu["status"]
        if cpu["leak_probability"]:  # bf16 on the GPU, float32 or bf16 on the CPU
            assert float(gpu["leak_probability"]) == pytest.approx(
                float(cpu["leak_probability"]), abs=0.02)
    assert main(["-q", "export", model, "--out", str(tmp_path / "m.onnx"),
                 "--device", "cuda"]) == 0
