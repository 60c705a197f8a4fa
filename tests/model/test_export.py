"""ONNX export: parity with the PyTorch path, the model card, dynamic batch, int8, failures,
and write failures that leave nothing (tests/helpers/faults.py)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from leakhunter.cli import main
from leakhunter.config import FeatureConfig, ModelConfig, to_dict
from leakhunter.errors import InputError
from leakhunter.model import checkpoint, export
from leakhunter.model.checkpoint import CheckpointError
from leakhunter.model.cnn import LeakCNN
from leakhunter.model.export import ExportError, OnnxScorer, export_onnx
from leakhunter.recordings.features import LogMel

from ..helpers.faults import REASON, fail_writes, one_line, temps

CFG = FeatureConfig()
MODEL_CFG = ModelConfig(width=8, dense=32)


def _save_model(path: Path, classes: list[str], positive: list[str], threshold=0.42) -> Path:
    """A randomly initialised LeakCNN with non-trivial normalisation and batch-norm
    statistics, saved as train._save_best does."""
    torch.manual_seed(len(classes))
    model = LeakCNN(CFG.n_mels, CFG.frames_per_segment, len(classes),
                    [classes.index(p) for p in positive], MODEL_CFG)
    model.set_normalisation(torch.linspace(-90, -40, CFG.n_mels), torch.linspace(8, 20, CFG.n_mels))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        # random weights answer nearly the same for every input: scale the last layer so
        # that logits spread by ~3 over real segments and probabilities cover (0, 1)
        mel = LogMel(CFG)(torch.from_numpy(export.parity_segments(CFG)[::3]))
        model.head[-1].weight *= 3.0 / model.eval()(mel).std(dim=0).mean()
        model.head[-1].bias -= model(mel).mean(dim=0)
    checkpoint.save(path, {
        "kind": "model", "model": model.state_dict(), "class_names": classes,
        "positive": positive, "task": "multiclass" if len(classes) > 2 else "binary",
        "feature_config": to_dict(CFG), "model_config": to_dict(MODEL_CFG),
        "threshold": threshold, "threshold_method": "fixed for the test", "aggregate": "vote",
        "vote_fraction": 0.5, "metrics": {"file_f1": 0.9}, "epoch": 1, "dataset_dir": "x",
        "parameters": 0, "leakhunter_version": "0.1.0"})
    return path


def _torch_scores(model_path: Path, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from leakhunter.model.card import load_model

    model, _ = load_model(model_path)
    with torch.inference_mode():
        out = model(LogMel(CFG)(torch.from_numpy(segments)))
        probs = torch.softmax(model.class_logits(out), dim=1)
        return model.leak_probability(out).numpy(), probs.numpy()


@pytest.fixture(scope="module")
def segments() -> np.ndarray:
    return export.parity_segments(CFG)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(checkpoint, exported ONNX file, card) of a binary model, exported once."""
    root = tmp_path_factory.mktemp("binary")
    model_path = _save_model(root / "best.pt", ["LEAK", "NOLEAK"], ["LEAK"])
    card = export_onnx(model_path, root / "out" / "leak.onnx")
    return model_path, root / "out" / "leak.onnx", card


def test_parity_segments_exercise_log_and_floor(segments: np.ndarray) -> None:
    assert segments.dtype == np.float32 and segments.shape[1] == CFG.segment_samples
    assert 200 <= len(segments) <= 400
    assert np.array_equal(segments, export.parity_segments(CFG))  # deterministic
    peaks = np.abs(segments).max(axis=1)
    assert peaks.min() == 0.0 and peaks.max() >= 0.99  # digital silence and full scale
    mel = LogMel(CFG)(torch.from_numpy(segments)).numpy()
    floored = (mel == mel.max(axis=(1, 2), keepdims=True) - CFG.top_db).any(axis=(1, 2))
    assert floored.sum() >= 10  # the top_db floor is reached in many segments


@pytest.mark.parametrize("frame_overlap,blocks", [(0.5, True), (0.75, True), (0.6, False)])
def test_front_end_framing_matches_the_index(frame_overlap: float, blocks: bool) -> None:
    """Block framing (hop divides n_fft) gives exactly the frames of the index Gather, and
    other overlaps use the Gather; the exported graph holds no Gather on the block path."""
    cfg = FeatureConfig(frame_overlap=frame_overlap)
    front = export.OnnxFrontEnd(LogMel(cfg))
    assert (front.blocks is not None) == blocks
    x = torch.randn(3, cfg.segment_samples)
    assert torch.equal(front.frame(x), x[:, front.index])
    assert torch.allclose(front(x), LogMel(cfg)(x), atol=1e-3)


def test_exported_graph_frames_without_gather(binary) -> None:
    graph = onnx.load(str(binary[1])).graph
    front = [n.op_type for n in graph.node if n.name.startswith("/front_end/")]
    assert "Gather" not in front and "Concat" in front


def test_export_binary_passes_parity_and_writes_card(binary) -> None:
    _, onnx_path, card = binary
    assert onnx_path.is_file() and not onnx_path.with_name("leak.onnx.tmp").exists()
    onnx.checker.check_model(str(onnx_path))
    on_disk = json.loads((onnx_path.parent / "model_card.json").read_text())
    assert on_disk == card
    parity = card["parity"]
    assert parity["passed"] and parity["segments"] >= 200
    assert parity["max_abs_diff_leak_probability"] < 1e-4
    assert parity["max_abs_diff_class_probabilities"] < 1e-4
    assert card["classes"] == ["LEAK", "NOLEAK"] and card["positive"] == ["LEAK"]
    assert card["task"] == "binary" and card["threshold"] == 0.42
    assert card["threshold_method"] == "fixed for the test" and card["aggregate"] == "vote"
    assert card["vote_fraction"] == 0.5 and card["opset"] == 18
    assert (card["sample_rate"], card["segment_samples"], card["segment_hop"]) == (8192, 2048, 1024)
    assert card["segment_s"] == 0.25 and card["feature_config"] == to_dict(CFG)
    assert card["inputs"] == [{"name": "waveform", "shape": ["batch", 2048], "dtype": "float32",
                               "units": card["inputs"][0]["units"]}]
    assert [(o["name"], o["shape"]) for o in card["outputs"]] == [
        ("class_probabilities", ["batch", 2]), ("leak_probability", ["batch"])]
    assert card["training"]["dataset_dir"] == "x" and card["training"]["epoch"] == 1
    assert card["training"]["metrics"] == {"file_f1": 0.9}
    assert card["int8"] is None and card["leakhunter_version"]
    # the front-end is in the graph: no complex ops, a Conv with the DFT kernels
    ops = {n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    assert "Conv" in ops and "Log" in ops and not ops & {"DFT", "STFT", "NonZero"}


def test_scorer_matches_torch_for_any_batch(binary, segments: np.ndarray) -> None:
    model_path, onnx_path, _ = binary
    scorer = OnnxScorer(onnx_path)
    assert scorer.segment_samples == 2048 and scorer.card.classes == ("LEAK", "NOLEAK")
    ref_leak, _ = _torch_scores(model_path, segments)
    for n in (1, 7, 300):
        x = np.resize(segments, (n, CFG.segment_samples))  # 300 wraps round: > 263 made
        leak, probs = scorer.score(x)
        assert leak.shape == (n,) and probs.shape == (n, 2) and leak.dtype == np.float32
        ref = _torch_scores(model_path, x)
        np.testing.assert_allclose(leak, ref[0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(probs, ref[1], atol=1e-4, rtol=0)
    leak, probs = scorer.score(segments)
    np.testing.assert_allclose(leak, ref_leak, atol=1e-4, rtol=0)
    assert np.ptp(leak) > 0.01  # the random model does not answer a constant
    np.testing.assert_allclose(leak, probs[:, 0], atol=1e-6)  # LEAK is class 0
    leak, probs = scorer.score(np.zeros((0, CFG.segment_samples), np.float32))
    assert leak.shape == (0,) and probs.shape == (0, 2)
    with pytest.raises(InputError):
        scorer.score(np.zeros((3, 1000), np.float32))


def test_scorer_batches_internally(binary, segments: np.ndarray, monkeypatch) -> None:
    _, onnx_path, _ = binary
    scorer = OnnxScorer(onnx_path)
    whole = scorer.score(segments)
    monkeypatch.setattr(export, "BATCH", 50)
    calls = []
    run = scorer.session.run
    monkeypatch.setattr(scorer, "session", type("S", (), {
        "run": lambda self, *a: calls.append(1) or run(*a)})())
    chunked = scorer.score(segments)
    assert len(calls) == -(-len(segments) // 50)
    np.testing.assert_array_equal(whole[0], chunked[0])


def test_multiclass_export_matches_aux_head(tmp_path: Path, segments: np.ndarray) -> None:
    classes = ["BACKGROUND", "CRACK", "LEAK", "NORMAL", "UNCLASSIFIED"]
    model_path = _save_model(tmp_path / "best.pt", classes, ["CRACK", "LEAK"], threshold=None)
    card = export_onnx(model_path, tmp_path / "mc.onnx")
    assert card["threshold"] is None and card["task"] == "multiclass"
    assert card["positive"] == ["CRACK", "LEAK"] and card["outputs"][0]["shape"] == ["batch", 5]
    leak, probs = OnnxScorer(tmp_path / "mc.onnx").score(segments)
    ref_leak, ref_probs = _torch_scores(model_path, segments)
    assert probs.shape == (len(segments), 5)
    np.testing.assert_allclose(leak, ref_leak, atol=1e-4, rtol=0)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-4, rtol=0)
    # the aux head, not the positive classes' softmax mass
    assert np.abs(leak - probs[:, 1:3].sum(axis=1)).max() > 1e-3


def test_int8_export_reports_its_difference(tmp_path: Path, segments: np.ndarray) -> None:
    model_path = _save_model(tmp_path / "best.pt", ["LEAK", "NOLEAK"], ["LEAK"])
    card = export_onnx(model_path, tmp_path / "leak.onnx", int8=True,
                       check_segments=segments[::4])
    q = card["int8"]
    assert q["file"] == "leak.int8.onnx" and (tmp_path / "leak.int8.onnx").is_file()
    assert q["segments"] == len(segments[::4]) == card["parity"]["segments"]
    # reported, not enforced (this random, steep model is far more sensitive than a trained one)
    assert 0.0 < q["max_abs_diff_leak_probability"] <= 1.0
    assert "MatMulInteger" in q["integer_ops"]
    graph = onnx.load(str(tmp_path / "leak.int8.onnx")).graph
    # the front-end's DFT (a MatMul) stays float
    assert any(n.op_type == "MatMul" for n in graph.node if n.name.startswith("/front_end/"))
    assert not any(n.op_type == "MatMulInteger" for n in graph.node
                   if n.name.startswith("/front_end/"))
    leak, _ = OnnxScorer(tmp_path / "leak.int8.onnx").score(segments[:5])
    assert leak.shape == (5,)
    # exporting again without int8 removes the stale int8 file
    again = export_onnx(model_path, tmp_path / "leak.onnx", check_segments=segments[:8])
    assert again["int8"] is None
    assert not (tmp_path / "leak.int8.onnx").exists()


def test_int8_falls_back_to_matmul(tmp_path: Path, segments: np.ndarray, monkeypatch) -> None:
    from onnxruntime import quantization

    real = quantization.quantize_dynamic

    def no_conv(*args, op_types_to_quantize=None, **kwargs):
        if op_types_to_quantize is None:
            raise RuntimeError("ConvInteger: not implemented")
        return real(*args, op_types_to_quantize=op_types_to_quantize, **kwargs)

    monkeypatch.setattr(quantization, "quantize_dynamic", no_conv)
    model_path = _save_model(tmp_path / "best.pt", ["LEAK", "NOLEAK"], ["LEAK"])
    q = export_onnx(model_path, tmp_path / "leak.onnx", int8=True,
                    check_segments=segments[:16])["int8"]
    assert "ConvInteger: not implemented" in q["fallback"]
    assert q["integer_ops"] == ["MatMulInteger"]


def test_parity_failure_raises_and_writes_nothing(tmp_path: Path, segments: np.ndarray,
                                                  monkeypatch) -> None:
    model_path = _save_model(tmp_path / "best.pt", ["LEAK", "NOLEAK"], ["LEAK"])
    forward = export.OnnxWrapper.forward

    def tampered(self, waveform):  # what a wrong front-end would do: a slightly louder input
        return forward(self, waveform * 1.5)

    monkeypatch.setattr(export.OnnxWrapper, "forward", tampered)
    with pytest.raises(ExportError, match="does not reproduce"):
        export_onnx(model_path, tmp_path / "out" / "leak.onnx", int8=True,
                    check_segments=segments)
    assert list((tmp_path / "out").iterdir()) == []


def test_nan_difference_fails_parity() -> None:
    ref = (np.zeros(3, np.float32), np.zeros((3, 2), np.float32))
    got = (np.array([0, np.nan, 0], np.float32), np.zeros((3, 2), np.float32))
    assert not export._compare(got, ref)["passed"]


def test_not_a_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        export_onnx(bad, tmp_path / "leak.onnx")
    assert not (tmp_path / "leak.onnx").exists()


def test_bad_check_segments(tmp_path: Path) -> None:
    model_path = _save_model(tmp_path / "best.pt", ["LEAK", "NOLEAK"], ["LEAK"])
    with pytest.raises(InputError):
        export_onnx(model_path, tmp_path / "leak.onnx", check_segments=np.zeros((4, 100)))


def test_scorer_refuses_missing_card_and_mismatched_graph(binary, tmp_path: Path) -> None:
    _, onnx_path, card = binary
    lonely = tmp_path / "lonely" / "leak.onnx"
    lonely.parent.mkdir()
    lonely.write_bytes(onnx_path.read_bytes())
    with pytest.raises(ExportError, match="model_card.json"):
        OnnxScorer(lonely)
    longer = {**card["feature_config"], "segment_s": 2 * card["feature_config"]["segment_s"]}
    (lonely.parent / "model_card.json").write_text(json.dumps({**card,
                                                               "feature_config": longer}))
    with pytest.raises(ExportError, match="do not match"):
        OnnxScorer(lonely)
    with pytest.raises(ExportError, match="not found"):
        OnnxScorer(tmp_path / "missing.onnx")


def test_export_write_failures_leave_nothing(run_copy: Path, tmp_path: Path, capsys,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "onnx" / "leak.onnx"

    def full_disk(wrapper, segment_samples, path):  # the exporter writes from C++
        Path(path).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(export, "_export_graph", full_disk)
    assert main(["-q", "export", str(run_copy / "best.pt"), "--out", str(out)]) == 1
    one_line(capsys.readouterr().err, str(out), "writing the ONNX model",
             REASON[errno.ENOSPC])
    assert list(out.parent.iterdir()) == []
    monkeypatch.undo()
    fail_writes(monkeypatch, "model_card.json.tmp", errno.ENOSPC)
    assert main(["-q", "export", str(run_copy / "best.pt"), "--out", str(out)]) == 1
    one_line(capsys.readouterr().err, "model_card.json", REASON[errno.ENOSPC])
    assert temps(out.parent) == []


def test_export_never_replaces_its_model_or_an_earlier_export(tmp_path: Path,
                                                              capsys) -> None:
    model = _save_model(tmp_path / "best.pt", ["LEAK", "NOLEAK"], ["LEAK"])
    source = model.read_bytes()
    assert main(["export", str(model), "--out", str(model)]) == 1
    one_line(capsys.readouterr().err, f"--out {model} would replace the input MODEL {model}")
    assert model.read_bytes() == source
    out = tmp_path / "exp" / "a.onnx"
    card = out.with_name("model_card.json")
    assert main(["export", str(model), "--out", str(card)]) == 1
    one_line(capsys.readouterr().err, f"the model card {card} is the same file as --out")
    assert not out.parent.exists()
    assert main(["-q", "export", str(model), "--out", str(out)]) == 0
    written = {p: p.read_bytes() for p in (out, card)}
    assert main(["export", str(model), "--out", str(out)]) == 1
    one_line(capsys.readouterr().err, f"{out}: already exists; use --overwrite to replace it")
    assert main(["export", str(model), "--out", str(out.with_name("b.onnx"))]) == 1
    one_line(capsys.readouterr().err, f"{card}: already exists (the card of an earlier "
                                      f"export into that folder: one per folder); use "
                                      f"--overwrite to replace it")
    assert {p: p.read_bytes() for p in written} == written
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.onnx", "model_card.json"]
    assert main(["-q", "export", str(model), "--out", str(out), "--overwrite"]) == 0
