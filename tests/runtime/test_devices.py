"""Device choice (leakhunter.runtime.devices) and every CUDA branch, reached on a CPU with
CUDA simulated (the ``fake_cuda`` fixture, tests/helpers/cuda.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from leakhunter.cli import main
from leakhunter.config import BuildConfig, TrainConfig
from leakhunter.dataset import extract as extract_module
from leakhunter.dataset.build import build_dataset
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.runtime import devices
from leakhunter.runtime.amp import resolve_amp
from leakhunter.training import distributed
from leakhunter.training.batches import resolve_auto

from ..helpers.cuda import FakeCuda

# --- resolution -----------------------------------------------------------------------------

def test_cuda_gets_an_index_and_is_made_current(fake_cuda: FakeCuda) -> None:
    choice = distributed.device_for(distributed.Context(), "cuda")  # crashed before
    assert choice.device == torch.device("cuda", 0) and choice.reason == ""
    assert ("set_device", 0) in fake_cuda.calls


def test_torchrun_takes_the_local_rank(fake_cuda: FakeCuda) -> None:
    fake_cuda.count = 2
    ctx = distributed.Context(rank=1, world=2, local_rank=1)
    for requested in ("auto", "cuda"):
        assert distributed.device_for(ctx, requested).device == torch.device("cuda", 1)
    assert distributed.ddp_device_ids(torch.device("cuda", 1)) == [1]
    assert distributed.ddp_device_ids(torch.device("cpu")) is None
    fake_cuda.count = 1
    with pytest.raises(devices.DeviceError, match="has 1 CUDA device"):
        distributed.device_for(ctx, "cuda")


def test_auto_is_decided_per_command(fake_cuda: FakeCuda) -> None:
    for command in ("train", "evaluate", "predict"):
        choice = devices.resolve("auto", command)
        assert choice.device == torch.device("cuda", 0) and choice.reason
    for command in ("build", "export"):
        choice = devices.resolve("auto", command)
        assert choice.device == torch.device("cpu") and "CPU" in choice.reason


def test_auto_without_cuda_is_the_cpu_and_says_why() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    choice = devices.resolve("auto", "train")
    assert choice.device == torch.device("cpu") and "no CUDA" in choice.reason
    assert "threads" in choice.describe() and "bf16" in choice.describe()


@pytest.mark.parametrize("requested,message", [
    ("cuda:3", "this machine has 2 CUDA device(s) (cuda:0 to cuda:1)"),
    ("tpu", "not a device name"),
    ("mps", "only cpu and cuda are supported"),
])
def test_bad_devices_are_refused(fake_cuda: FakeCuda, requested: str, message: str) -> None:
    fake_cuda.count = 2
    with pytest.raises(devices.DeviceError) as err:
        devices.resolve(requested, "train")
    assert message in str(err.value)


def test_cuda_on_a_machine_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(devices.DeviceError, match="CUDA is not available"):
        devices.resolve("cuda:0", "predict")


def test_description_names_the_gpu(fake_cuda: FakeCuda) -> None:
    text = devices.resolve("auto", "train").describe()
    assert "cuda:0 (NVIDIA H200, compute capability 9.0, 140 GiB)" in text
    assert "auto: the CNN trains fastest on a GPU" in text


# --- precision, batch size, memory ----------------------------------------------------------

@pytest.mark.parametrize("capability,expected", [((9, 0), "bf16"), ((8, 0), "bf16"),
                                                 ((7, 5), "fp16")])
def test_precision_auto_on_gpus(fake_cuda: FakeCuda, capability: tuple[int, int],
                                expected: str) -> None:
    fake_cuda.capability = capability
    gpu = devices.resolve("cuda", "train").device
    assert resolve_amp("auto", gpu) == expected
    assert resolve_amp("off", gpu) == "off" and resolve_amp("fp16", gpu) == "fp16"
    assert resolve_amp("auto", torch.device("cpu")) in ("bf16", "off")


def test_automatic_batch_size_and_rate() -> None:
    gpu, cpu = torch.device("cuda", 0), torch.device("cpu")
    big = resolve_auto(TrainConfig(), gpu, 2_000_000)  # capped
    assert (big.batch_size, big.lr) == (16384, pytest.approx(0.016))
    mid = resolve_auto(TrainConfig(), gpu, 200_000)  # 16 steps at least: 8192
    assert (mid.batch_size, mid.lr) == (8192, pytest.approx(2e-3 * 32 ** 0.5))
    small = resolve_auto(TrainConfig(), gpu, 10_000)  # 16 steps at least: 512
    assert (small.batch_size, small.lr) == (512, pytest.approx(2e-3 * 2 ** 0.5))
    assert resolve_auto(TrainConfig(), gpu, 100).batch_size == 256
    assert (resolve_auto(TrainConfig(), cpu, 200_000).batch_size,
            resolve_auto(TrainConfig(), cpu, 200_000).lr) == (256, pytest.approx(2e-3))
    given = resolve_auto(TrainConfig(batch_size=64, lr=1e-3), gpu, 200_000)
    assert (given.batch_size, given.lr) == (64, 1e-3)


def test_gpu_memory_queries_use_the_index(fake_cuda: FakeCuda) -> None:
    gpu = devices.resolve("cuda", "train").device
    devices.reset_peak_memory(gpu)
    assert devices.peak_memory(gpu) == 3 * 2**30
    assert devices.free_memory(gpu) == fake_cuda.free
    devices.synchronize(gpu)
    assert len(devices.rng_state(gpu)) == 1
    devices.set_rng_state(gpu, [torch.zeros(8, dtype=torch.uint8)] * 2)  # saved on 2 GPUs
    names = [name for name, _ in fake_cuda.calls]
    for name in ("reset_peak_memory_stats", "max_memory_allocated", "mem_get_info",
                 "synchronize"):
        assert name in names
    assert ("set_rng_state_all", 1) in fake_cuda.calls
    cpu = torch.device("cpu")
    assert devices.peak_memory(cpu) is None and devices.rng_state(cpu) == []


def test_split_larger_than_the_gpu_stays_in_host_memory(fake_cuda: FakeCuda,
                                                        dataset: Path) -> None:
    data = load_split(dataset / SPLIT_FILES["TRAINING"], "yes")
    fake_cuda.free = 1000  # bytes
    where = data.place(devices.resolve("cuda", "train").device)
    assert where.startswith("in host memory") and data.mel.device.type == "cpu"


def test_exact_float32_turns_tf32_off_and_restores_it() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with devices.exact_float32(torch.device("cuda", 0)):
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


# --- the GPU data paths, run on the CPU -----------------------------------------------------

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


def test_predict_with_the_model_in_the_main_process_matches(
        recordings: Path, trained_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA predict path (workers compute features, this process runs the model on
    many recordings at once) gives the CPU path's decisions."""
    from leakhunter.decisions import predict as predict_module
    from leakhunter.decisions.predict import Predictor

    reference = list(Predictor(trained_run / "best.pt", workers=2).predict([recordings]))
    monkeypatch.setattr(predict_module, "_score_in_main", lambda device: True)
    monkeypatch.setattr(predict_module, "MAIN_SEGMENTS", 40)  # several model calls
    predictor = Predictor(trained_run / "best.pt", workers=2)
    assert predictor.model is not None
    got = list(predictor.predict([recordings]))
    assert [r["path"] for r in got] == [r["path"] for r in reference]
    for a, b in zip(got, reference):
        assert (a["status"], a["decision"], a["segments"]) == \
            (b["status"], b["decision"], b["segments"])
        if b["leak_probability"] is not None:
            assert a["leak_probability"] == pytest.approx(b["leak_probability"], abs=1e-5)


# --- the command line -----------------------------------------------------------------------

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


def test_onnx_scoring_refuses_a_gpu(trained_run: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", str(trained_run / "best.pt"), str(tmp_path), "--onnx",
                 str(tmp_path / "m.onnx"), "--device", "cuda:0"])
    assert code == 1 and "runs in onnxruntime on the CPU" in capsys.readouterr().err


def test_start_up_log_names_the_device(dataset: Path, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    from leakhunter.training.train import train

    with caplog.at_level(logging.INFO, logger="leakhunter"):
        train(dataset, tmp_path / "run", TrainConfig(epochs=1, device="cpu"))
    text = caplog.text
    assert "device: cpu (CPU, " in text and "threads" in text
    assert "automatic settings on cpu: batch size 256" in text
    assert "in host memory" in text


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
