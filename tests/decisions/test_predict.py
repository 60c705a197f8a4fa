"""`leakhunter predict`: same features and decisions as build/evaluate, any length, bad input,
a recording shorter than one segment from build to predict, the CUDA path (the model run in
the main process), ONNX scoring refusing a GPU, and write failures (tests/helpers/faults.py)."""

from __future__ import annotations

import csv
import errno
import json
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from leakhunter.cli import main
from leakhunter.config import AudioConfig, FeatureConfig
from leakhunter.dataset.store import SPLIT_FILES, read_split_info
from leakhunter.decisions import predict as predict_module
from leakhunter.decisions.predict import FILES_PER_TASK, Predictor, predict, task_chunks
from leakhunter.errors import AudioError
from leakhunter.model import checkpoint
from leakhunter.recordings.features import LogMel, extract
from leakhunter.recordings.stream import SegmentAssembler, waveform_pieces

from ..helpers.faults import REASON, fail_writes, one_line, temps
from ..helpers.samples import (
    EXPECTED_KIND,
    SHORT_FILE,
    TINY_FILE,
    bad_files,
    needs_real,
    real_files,
)


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_predict_and_build_compute_identical_features(dataset: Path) -> None:
    info = read_split_info(dataset / SPLIT_FILES["TESTING"])
    front = LogMel(info.feature)
    with h5py.File(info.path, "r") as h5:
        for row in range(info.recordings):
            pieces = waveform_pieces(info.files["path"][row], info.feature,
                                     AudioConfig()).pieces
            asm = SegmentAssembler(info.feature)
            waves = [w for w in (asm.push(p) for p in pieces) if w.size]
            (mel,) = extract(waves, front)
            lo, n = info.files["first_segment"][row], info.files["segment_count"][row]
            np.testing.assert_array_equal(mel.astype(np.float16), h5["mel"][lo:lo + n])


def test_predict_reproduces_evaluate_decisions(run: Path, dataset: Path, tmp_path: Path
                                               ) -> None:
    assert main(["-q", "evaluate", str(run / "best.pt"), str(dataset)]) == 0
    evaluated = {r["path"]: r for r in _csv(run / "eval-testing" / "predictions.csv")}
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", str(run / "best.pt"), *evaluated, "--out", str(out),
                 "--workers", "2"]) == 0
    predicted = {r["path"]: r for r in _csv(out)}
    assert predicted.keys() == evaluated.keys()
    for path, row in predicted.items():
        assert row["decision"] == evaluated[path]["decision"], path
        assert float(row["vote_fraction"]) == pytest.approx(
            float(evaluated[path]["vote_fraction"]), abs=1e-6)
        assert float(row["leak_probability"]) == pytest.approx(
            float(evaluated[path]["leak_probability"]), abs=1e-5)
    threshold = json.loads((run / "model_meta.json").read_text())["threshold"]
    assert all(float(r["threshold"]) == pytest.approx(threshold) for r in predicted.values())


def test_long_recordings_are_read_in_blocks_with_the_same_result(run: Path, tmp_path: Path,
                                                                 monkeypatch) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "S1~R1~20240101T000000~15.flac"
    x = 0.1 * rng.standard_normal(8000 * 45) + 0.02 * np.sin(np.arange(8000 * 45) * 0.3)
    sf.write(path, np.stack([x, 0.5 * x], 1), 8000)  # stereo, 8 kHz, 45 s
    whole = predict(run / "best.pt", [path], workers=1, segments=True)[0]
    monkeypatch.setattr(predict_module, "BLOCK_S", 10.0)  # now read in 5 blocks
    blocks = predict(run / "best.pt", [path], workers=1, segments=True)[0]
    assert whole["segments"] == blocks["segments"] == FeatureConfig().n_segments(45 * 8192)
    a = np.array([p for _, p, _ in whole["timeline"]])
    b = np.array([p for _, p, _ in blocks["timeline"]])
    np.testing.assert_allclose(a, b, atol=2e-3)
    assert whole["sensor_id"] == "S1" and whole["gain_db"] == 15.0


def test_statuses_come_from_the_error_kind_not_its_wording(run: Path, tmp_path: Path,
                                                          monkeypatch) -> None:
    """Every AudioError message reworded: each unusable recording keeps its status."""
    bad = bad_files(tmp_path / "bad")
    expected = {path.name: EXPECTED_KIND[kind] for kind, path in bad.items()
                if path.exists()}
    real_init = AudioError.__init__

    def reworded(self, path, kind, reason):
        real_init(self, path, kind, f"message number {len(reason)}")  # no word of it left

    monkeypatch.setattr(AudioError, "__init__", reworded)
    records = predict(run / "best.pt", [bad[k] for k in bad if bad[k].exists()], workers=1)
    assert {Path(r["path"]).name: r["status"] for r in records} == expected
    assert {"unreadable", "truncated", "empty", "invalid samples", "silence",
            "too short"} == set(
        expected.values())


def test_truncated_recordings_are_named_or_judged_when_allowed(run: Path, recordings: Path,
                                                             tmp_path: Path) -> None:
    source = sorted((recordings / "LEAK").glob("*~[2-9]*.wav"))[0]  # not out of water
    cut = tmp_path / "S0999~R999999~20240101T000000~20.wav"
    cut.write_bytes(source.read_bytes()[:44 + 1000])  # header: 2 s; file: 500 frames
    (record,) = predict(run / "best.pt", [cut], workers=1)
    assert record["status"] == "truncated" and record["decision"] is None
    (kept,) = predict(run / "best.pt", [cut], workers=1, allow_truncated=True)
    assert kept["status"] == "truncated" and kept["decision"] in ("LEAK", "NO LEAK")
    assert kept["duration_s"] == pytest.approx(500 / 4096) and kept["segments"] == 1
    # a results file of runs without --allow-truncated keeps its identity; with it, another
    assert "allow_truncated" not in Predictor(run / "best.pt", workers=1).identity()
    assert Predictor(run / "best.pt", workers=1,
                     allow_truncated=True).identity()["allow_truncated"] is True


def test_unjudgeable_recordings_get_a_status(run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    bad_files(tmp_path / "bad")
    for path in (tmp_path / "bad").iterdir():  # the bad files and one good one
        shutil.copy(path, folder / path.name)
    sf.write(folder / "S9~R9~T~1.wav", np.random.default_rng(0).standard_normal(8192) * 0.1,
             8192)  # out of water
    sf.write(folder / "padded.wav", np.random.default_rng(1).standard_normal(819) * 0.1,
             8192)  # 0.1 s: above the floor, under one segment
    out = tmp_path / "p.csv"
    assert main(["predict", str(run / "best.pt"), str(folder), "--out", str(out),
                 "--workers", "1"]) == 0
    status = {Path(r["path"]).name: r for r in _csv(out)}
    assert status["empty.wav"]["status"] == "unreadable"
    assert status["text.wav"]["status"] == "unreadable"
    assert status["nosamples.wav"]["status"] in ("empty", "unreadable")
    assert status["nan.wav"]["status"] == "invalid samples"
    assert status["silence.wav"]["status"] == "silence"
    assert status["S9~R9~T~1.wav"]["status"] == "out of water"
    assert status["short.wav"]["status"] == "too short"  # 0.02 s: under --min-duration
    assert status["padded.wav"]["status"] == "padded" and status["padded.wav"]["decision"]
    # judged; white noise may well be flagged as unlike the training data
    assert status["good.wav"]["status"] in ("ok", "unfamiliar")
    assert status["good.wav"]["decision"]
    for name in ("empty.wav", "silence.wav", "S9~R9~T~1.wav", "short.wav"):
        assert status[name]["decision"] == "" and status[name]["leak_probability"] == ""
    assert "not judged" in capsys.readouterr().out
    assert main(["-q", "predict", str(run / "best.pt"), str(folder), "--out", str(out),
                 "--workers", "1", "--strict"]) == 1
    not_judged = sum(not r["decision"] for r in status.values())
    assert capsys.readouterr().err.endswith(f"leakhunter: error: --strict: {not_judged} "
                                            f"recording(s) could not be judged (see their "
                                            f"status)\n")


@needs_real
def test_real_hydrophone_recordings(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "real.json"
    assert main(["-q", "predict", str(run / "best.pt"), str(real_files()[0].parent),
                 "--out", str(out)]) == 0
    records = json.loads(out.read_text())
    assert len(records) == 5
    for r in records:
        # judged, and flagged: a laboratory testbed is unlike the generated training data
        assert r["status"] == "unfamiliar" and r["decision"] in ("LEAK", "NO LEAK")
        assert r["familiarity"] is not None and r["familiarity"] < 0.01
        assert r["segments"] == FeatureConfig().n_segments(round(r["duration_s"] * 8192))


@pytest.mark.parametrize("case,message", [
    ("missing-input", "no such file or folder"),
    ("not-a-model", "model.pt: not a readable checkpoint (not a PyTorch file)"),
    ("pickle", "evil.pt: refused: the file holds Python objects other than tensors"),
    ("protocol-4", "p4.pt: not a readable checkpoint (not a PyTorch file)"),
])
def test_bad_model_or_input_is_one_line(run: Path, dataset: Path, tmp_path: Path, capsys,
                                        case: str, message: str) -> None:
    model, inputs = run / "best.pt", [str(dataset)]
    if case == "missing-input":
        inputs = [str(tmp_path / "nowhere")]
    elif case == "not-a-model":
        model = tmp_path / "model.pt"
        model.write_text("version: 1\nnotes on the model\n")
    elif case == "protocol-4":  # torch warns about the protocol: one line all the same
        model = tmp_path / "p4.pt"
        model.write_bytes(pickle.dumps({"format": 1}, protocol=4))
    else:
        model = tmp_path / "evil.pt"
        torch.save({"kind": "model", "format_version": 1, "x": Path("/")}, model)
    assert main(["predict", str(model), *inputs, "--out", str(tmp_path / "p.csv")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("flags,message", [
    (["--threshold", "1.5"], "threshold must be in [0, 1]"),  # as evaluate and calibrate
    (["--threshold", "-1"], "threshold must be in [0, 1]"),
    (["--workers", "-1"], "workers must be at least 0"),  # as report
])
def test_meaningless_settings_are_one_line(tmp_path: Path, capsys, flags: list[str],
                                           message: str) -> None:
    """Refused before the model or any recording is read."""
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "best.pt"), str(tmp_path), "--out", str(out),
                 *flags]) == 1
    one_line(capsys.readouterr().err, message)
    assert not out.exists()


def test_python_api(run: Path, recordings: Path) -> None:
    files = sorted((recordings / "LEAK").glob("*.wav"))[:3]
    predictor = Predictor(run / "best.pt", workers=1, threshold=0.3, vote_fraction=0.25)
    records = list(predictor.predict(files))
    assert [r["path"] for r in records] == [str(f) for f in files]
    for r in records:
        assert r["threshold"] == 0.3 and r["segments"] == FeatureConfig().n_segments(2 * 8192)
        assert (r["decision"] == "LEAK") == (r["vote_fraction"] >= 0.25)


def test_onnx_predictions_agree_with_torch(run: Path, recordings: Path, tmp_path: Path
                                           ) -> None:
    onnx = tmp_path / "export" / "model.onnx"
    assert main(["-q", "export", str(run / "best.pt"), "--out", str(onnx)]) == 0
    card = json.loads((onnx.parent / "model_card.json").read_text())
    assert card["parity"]["passed"] and card["parity"]["max_abs_diff_leak_probability"] < 1e-4
    a, b = tmp_path / "torch.csv", tmp_path / "onnx.csv"
    assert main(["-q", "predict", str(run / "best.pt"), str(recordings), "--out", str(a),
                 "--segments"]) == 0
    assert main(["-q", "predict", str(run / "best.pt"), str(recordings), "--out", str(b),
                 "--onnx", str(onnx), "--segments"]) == 0
    rows_a, rows_b = _csv(a), _csv(b)
    assert [r["path"] for r in rows_a] == [r["path"] for r in rows_b]
    near: set[str] = set()  # recordings with a segment within bf16's error of the threshold
    for seg in _csv(a.with_name("torch_segments.csv")):
        if abs(float(seg["leak_probability"]) - float(rows_a[0]["threshold"])) < 0.02:
            near.add(seg["path"])
    assert len(near) < len(rows_a)
    for ra, rb in zip(rows_a, rows_b):
        # familiarity needs the torch model's embeddings: ONNX rows have no flag
        assert ra["status"].replace("unfamiliar", "ok") == rb["status"]
        assert rb["familiarity"] == ""
        assert ra["decision"] == rb["decision"] or ra["path"] in near
        if ra["leak_probability"]:
            # torch scores float16-rounded features in bf16 where the CPU has it; the ONNX
            # graph works in float32 throughout
            assert float(ra["leak_probability"]) == pytest.approx(
                float(rb["leak_probability"]), abs=0.02)


def test_onnx_graph_of_another_model_is_refused(run: Path, recordings: Path,
                                                tmp_path: Path, capsys) -> None:
    onnx = tmp_path / "export" / "a.onnx"
    assert main(["-q", "export", str(run / "best.pt"), "--out", str(onnx)]) == 0
    other = tmp_path / "other.pt"  # another model file: same weights, another rule
    checkpoint.save(other, {**checkpoint.load(run / "best.pt", "model"), "threshold": 0.01})
    out = tmp_path / "p.csv"
    assert main(["predict", str(other), str(recordings / "LEAK"), "--onnx", str(onnx),
                 "--out", str(out)]) == 1
    one_line(capsys.readouterr().err, f"--onnx {onnx} was exported from {run / 'best.pt'}",
             f"not from MODEL {other}")
    assert not out.exists()


def test_multiclass_columns(multiclass_run, tmp_path: Path) -> None:
    from leakhunter.config import MULTICLASS_LABELS

    rec, _, run = multiclass_run
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", str(run / "best.pt"), str(rec / "CRACK"), "--out",
                 str(out), "--workers", "1"]) == 0
    rows = [r for r in _csv(out) if r["status"] == "ok"]
    assert rows
    for r in rows:
        probs = [float(r[f"p_{c}"]) for c in MULTICLASS_LABELS]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert r["predicted_class"] in MULTICLASS_LABELS


@pytest.mark.parametrize("n,workers", [(0, 2), (1, 2), (7, 1), (300, 2), (1000, 16)])
def test_task_chunks_cover_every_path_in_order_and_shrink_at_the_end(n: int,
                                                                     workers: int) -> None:
    paths = [f"r{i}.wav" for i in range(n)]
    chunks = task_chunks(paths, workers)
    assert [p for c in chunks for p in c] == paths
    sizes = [len(c) for c in chunks]
    assert all(1 <= s <= FILES_PER_TASK for s in sizes)
    assert sizes == sorted(sizes, reverse=True)  # never a long task after short ones
    if n >= 8 * FILES_PER_TASK * workers:
        assert sizes[0] == FILES_PER_TASK and sizes[-1] == 1


def test_short_recording_through_build_train_evaluate_predict(presplit: Path, tmp_path: Path,
                                                              capsys) -> None:
    ds, run = tmp_path / "ds", tmp_path / "run"
    assert main(["build", str(presplit), "--out", str(ds), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "2 padded to one segment" in printed and "1 skipped" in printed
    report = json.loads((ds / "build_report.json").read_text())
    assert report["padded"] == 2 and report["splits"]["TESTING"]["padded"] == 1
    assert report["splits"]["TRAINING"]["padded"] == 1 and report["min_duration_s"] == 0.05
    assert [Path(s["path"]).name for s in report["skipped"]] == [TINY_FILE]
    assert "too short" in report["skipped"][0]["reason"]
    with h5py.File(ds / SPLIT_FILES["TESTING"], "r") as h5:
        names = [Path(p).name for p in h5["files/path"].asstr()[()]]
        padded = h5["files/padded"][()]
        counts = h5["files/segment_count"][()]
    i = names.index(SHORT_FILE)
    assert padded[i] == 1 and counts[i] == 1 and padded.sum() == 1

    assert main(["-q", "train", str(ds), "--out", str(run), "--epochs", "1", "--width", "8",
                 "--dense", "32", "--batch-size", "32"]) == 0
    assert main(["evaluate", str(run / "best.pt"), str(ds), "--out", str(tmp_path / "ev")]) == 0
    assert "1 recording(s) shorter than one segment" in capsys.readouterr().out
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert ev["dataset"]["padded"] == 1
    rows = {Path(r["path"]).name: r for r in
            csv.DictReader((tmp_path / "ev" / "predictions.csv").open())}
    assert SHORT_FILE in rows and TINY_FILE not in rows

    out = tmp_path / "p.csv"
    leak = presplit / "TESTING" / "LEAK"
    assert main(["-q", "predict", str(run / "best.pt"), str(leak / SHORT_FILE),
                 str(leak / TINY_FILE), "--out", str(out), "--workers", "1"]) == 0
    predicted = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert predicted[SHORT_FILE]["status"] == "padded" and predicted[SHORT_FILE]["segments"] == "1"
    assert predicted[SHORT_FILE]["decision"] == rows[SHORT_FILE]["decision"]
    assert float(predicted[SHORT_FILE]["leak_probability"]) == pytest.approx(
        float(rows[SHORT_FILE]["leak_probability"]), abs=0.02)
    assert predicted[TINY_FILE]["status"] == "too short" and predicted[TINY_FILE]["decision"] == ""
    # the floor travels with the model: a lower one given to predict judges the tiny file
    assert main(["-q", "predict", str(run / "best.pt"), str(leak / TINY_FILE), "--out", str(out),
                 "--workers", "1", "--min-duration", "0.01"]) == 0
    assert next(csv.DictReader(out.open()))["status"] == "padded"


def test_predict_with_the_model_in_the_main_process_matches(
        recordings: Path, trained_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA predict path (workers compute features, this process runs the model on
    many recordings at once) gives the CPU path's decisions."""
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


def test_onnx_scoring_refuses_a_gpu(trained_run: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", str(trained_run / "best.pt"), str(tmp_path), "--onnx",
                 str(tmp_path / "m.onnx"), "--device", "cuda:0"])
    assert code == 1 and "runs in onnxruntime on the CPU" in capsys.readouterr().err


@pytest.mark.parametrize("pattern", ["decisions.csv.tmp", "decisions_segments.csv.tmp"])
def test_predict_write_failures_are_one_line(run_copy: Path, recordings: Path, tmp_path: Path,
                                             capsys, monkeypatch: pytest.MonkeyPatch,
                                             pattern: str) -> None:
    out = tmp_path / "pred" / "decisions.csv"
    fail_writes(monkeypatch, pattern, errno.ENOSPC)
    assert main(["-q", "predict", str(run_copy / "best.pt"), str(recordings / "LEAK"),
                 "--out", str(out), "--segments", "--workers", "1"]) == 1
    one_line(capsys.readouterr().err, pattern.replace(".tmp", ""), REASON[errno.ENOSPC])
    assert temps(tmp_path / "pred") == []


def test_outputs_never_replace_the_inputs_or_each_other(run: Path, recordings: Path,
                                                        tmp_path: Path, capsys) -> None:
    model, folder = run / "best.pt", tmp_path / "rec"
    wav = folder / "LEAK" / "a.wav"
    wav.parent.mkdir(parents=True)
    shutil.copy(sorted((recordings / "LEAK").glob("*.wav"))[-1], wav)
    link, q = tmp_path / "link.csv", tmp_path / "q.csv"
    link.symlink_to(model)
    before = {p: p.read_bytes() for p in (model, wav)}
    for inputs, flags, message in [
        ([folder], ["--out", model], f"--out {model} would replace the input MODEL {model}: "),
        ([folder], ["--out", link], f"--out {link} would replace the input MODEL {model}"),
        ([wav], ["--out", wav], f"--out {wav} would replace the input recording {wav}"),
        ([folder], ["--out", wav], f"--out {wav} would replace the input recording {wav}"),
        ([folder], ["--out", q, "--sensors", q], f"--sensors {q} is the same file as --out "
                                                 f"{q}: give each output its own file"),
        ([folder], ["--out", q, "--report", q], f"--report {q} is the same file as --out"),
        ([folder], ["--out", q, "--segments", "--report", tmp_path / "q_segments.csv"],
         "is the same file as --out's segment timeline"),
        ([folder], ["--out", q, "--sensors", tmp_path / "q.info.json"],
         "is the same file as --out's info file"),
    ]:
        assert main(["predict", str(model), *map(str, inputs), *map(str, flags),
                     "--workers", "1"]) == 1
        one_line(capsys.readouterr().err, message)
        assert {p: p.read_bytes() for p in before} == before, flags
        assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "rec", "run"]
    # in the recordings' folder, a file that is not one of them is fine
    assert main(["-q", "predict", str(model), str(folder), "--out", str(folder / "p.csv"),
                 "--workers", "1"]) == 0
    assert [r["path"] for r in _csv(folder / "p.csv")] == [str(wav)]
