"""`leakhunter learn`: the selection rule, both modes end to end through the CLI, lineage,
resume after an interruption, the parent left untouched, and bad input in one line."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from leakhunter.cli import main
from leakhunter.config import SynthConfig
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.learn import adapt, rounds
from leakhunter.learn.adapt import adapted_copy
from leakhunter.learn.selection import select
from leakhunter.model import checkpoint
from leakhunter.model.card import Rule, load_model
from leakhunter.recordings.synth.synth import synthesize
from leakhunter.runtime import signals

from ..helpers.samples import TINY

FAST = ["--epochs", "1", "--batch-size", "32", "--workers", "1", "--device", "cpu"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def site_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny labelled recordings of site B (read-only)."""
    root = tmp_path_factory.mktemp("siteB") / "recordings"
    synthesize(root, SynthConfig(**{**TINY.__dict__, "site": "B", "seed": 8}))
    return root


@pytest.fixture(scope="module")
def labelled_run(trained_run: Path, dataset: Path, site_b: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A two-round labelled learn run with replay (read-only), and the parent's SHA-256
    taken before it ran."""
    run = tmp_path_factory.mktemp("learn") / "run"
    parent = trained_run / "best.pt"
    before = _sha256(parent)
    assert main(["-q", "learn", str(parent), str(site_b), "--out", str(run), "--replay",
                 str(dataset), "--rounds", "2", *FAST]) == 0
    return run, before


# --- the selection rule ---------------------------------------------------------------------

RULE = Rule(threshold=0.5, vote_fraction=0.5, aggregate="vote", class_aggregate="vote")
LEAK = (0,)


def _probs(leak: list[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.array(leak)
    return p, np.stack([p, 1 - p], axis=1)  # classes LEAK (0), NOLEAK (1)


def test_keeps_the_share_that_agrees_most_with_the_label() -> None:
    prob, cls = _probs([0.9, 0.2, 0.7, 0.6, 0.1, 0.3, 0.8])
    index = np.array([0, 0, 0, 0, 1, 1, 1])
    sel = select(prob, cls, index, np.array([0, 1]), RULE, LEAK, keep=0.5, confidence=0.8)
    # recording 0 (a leak): the 2 most leak-like of 4; recording 1 (no leak): 2 of 3 least
    assert sel.segments.tolist() == [0, 2, 4, 5]
    assert sel.label.tolist() == [0, 0, 1, 1]
    # recording 1 is decided a leak? its 2nd largest of 3 is 0.3 < 0.5: no; recording 0 yes
    assert sel.counts["false_alarms"] == 0 and sel.counts["misses"] == 0


def test_counts_selected_segments_from_misses_and_false_alarms() -> None:
    prob, cls = _probs([0.1, 0.2, 0.3, 0.9, 0.8, 0.7])
    index = np.array([0, 0, 0, 1, 1, 1])
    sel = select(prob, cls, index, np.array([0, 1]), RULE, LEAK, keep=1.0, confidence=0.8)
    assert sel.counts["misses"] == 1 and sel.counts["false_alarms"] == 1
    assert sel.counts["segments_from_misses"] == 3
    assert sel.counts["segments_from_false_alarms"] == 3


def test_unlabelled_uses_confident_decisions_only() -> None:
    prob, cls = _probs([0.9, 0.8, 0.95, 0.9, 0.2, 0.6, 0.1, 0.2, 0.3])
    index = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    sel = select(prob, cls, index, None, RULE, LEAK, keep=0.5, confidence=0.8)
    # recording 0: all 3 agree (leak); 1: 2 of 3 agree (0.67 < 0.8); 2: all say no leak
    assert sel.recording_label.tolist() == [0, -1, 1]
    assert sel.counts["below_confidence"] == 1 and sel.counts["pseudo_leak"] == 1
    assert sel.segments.tolist() == [0, 2, 6, 7]
    assert np.allclose(sel.confidence, [1.0, 2 / 3, 1.0])


# --- end to end -----------------------------------------------------------------------------

def test_labelled_run_writes_rounds_with_lineage(labelled_run, trained_run: Path) -> None:
    run, before = labelled_run
    parent = trained_run / "best.pt"
    assert _sha256(parent) == before  # the parent model is never written
    report = json.loads((run / "learn_report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert (run / "learn.png").stat().st_size > 1000
    assert _sha256(run / "best.pt") == _sha256(run / "round-2" / "best.pt")
    hashes = [before, _sha256(run / "round-1" / "best.pt")]
    for r, parent_hash in zip((1, 2), hashes):
        state = checkpoint.load(run / f"round-{r}" / "best.pt", "model")
        lineage = state["parent"]
        assert lineage["round"] == r and lineage["sha256"] == parent_hash
        assert lineage["origin_sha256"] == before
        counts = lineage["data"]["counts"]
        assert counts["segments_selected"] > 0 and counts["recordings_used"] > 0
        assert lineage["data"]["replay_segments"] == round(counts["segments_selected"])
        assert state["threshold_source"]["split"] == "VALIDATION"
        assert "familiarity" in state  # statistics of the data it now knows
        assert (run / f"round-{r}" / "config.json").exists()  # a train run like any other
        figures = report["rounds"][r - 1]
        for key in ("new_test", "old_test"):
            assert set(figures[key]) >= {"accuracy", "f1", "specificity", "sensitivity"}
    assert report["parent"]["new_test"] and report["parent"]["old_test"]
    # the chain reads back: round 2's parent record holds round 1's lineage
    assert checkpoint.load(run / "round-2" / "best.pt", "model")["parent"]["parent"][
        "round"] == 1
    # the new site's recordings are a dataset in the run, split as build splits
    assert (run / "data" / "build_report.json").exists()
    selection = json.loads((run / "round-1" / "data" / "selection.json").read_text())
    assert selection["mode"] == "labelled"


def test_resume_after_an_interruption_matches_the_uninterrupted_run(
        labelled_run, trained_run: Path, dataset: Path, site_b: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    done, _ = labelled_run
    run = tmp_path / "run"
    real_train = rounds.train
    calls = {"n": 0}

    def stop_in_round_two(*args, **kwargs):
        if kwargs.get("lineage", {}).get("round") == 2 and not kwargs.get("resume"):
            def pending():
                calls["n"] += 1
                return signal.SIGINT if calls["n"] >= 3 else None
            monkeypatch.setattr(signals, "pending", pending)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(rounds, "train", stop_in_round_two)
    with pytest.raises(signals.Interrupted):
        rounds.learn(trained_run / "best.pt", site_b, run,
                     rounds.LearnConfig(rounds=2, epochs=1, batch_size=32, workers=1,
                                        device="cpu"), replay=dataset)
    monkeypatch.undo()
    assert (run / "round-1" / "round.json").exists()
    assert not (run / "round-2" / "round.json").exists()
    assert (run / "round-2" / "checkpoints" / "last.pt").exists()
    assert main(["-q", "learn", "--resume", str(run)]) == 0
    for r in (1, 2):
        a = checkpoint.load(done / f"round-{r}" / "best.pt", "model")["model"]
        b = checkpoint.load(run / f"round-{r}" / "best.pt", "model")["model"]
        for key in a:
            assert torch.equal(a[key], b[key]), (r, key)
    assert json.loads((run / "learn_report.json").read_text())["rounds"][1]["new_test"] == \
        json.loads((done / "learn_report.json").read_text())["rounds"][1]["new_test"]
    # a finished run can be extended: rounds 1-2 are kept, round 3 starts from round 2
    kept = _sha256(run / "round-2" / "best.pt")
    assert main(["-q", "learn", "--resume", str(run), "--rounds", "3"]) == 0
    assert _sha256(run / "round-2" / "best.pt") == kept
    assert checkpoint.load(run / "round-3" / "best.pt", "model")["parent"]["sha256"] == kept
    assert len(json.loads((run / "learn_report.json").read_text())["rounds"]) == 3
    assert json.loads((run / "learn.json").read_text())["config"]["rounds"] == 3


def test_unlabelled_run_learns_from_confident_decisions(labelled_run, trained_run: Path,
                                                        dataset: Path, site_b: Path,
                                                        tmp_path: Path, capsys) -> None:
    done, _ = labelled_run
    run = tmp_path / "run"
    assert main(["learn", str(trained_run / "best.pt"), str(site_b), "--out", str(run),
                 "--unlabelled", "--confidence", "0.5", "--truth", str(done / "data"),
                 "--replay", str(dataset), "--rounds", "1", *FAST]) == 0
    out = capsys.readouterr().out
    assert "round 0 is the parent" in out
    selection = json.loads((run / "round-1" / "data" / "selection.json").read_text())
    counts = selection["counts"]
    assert selection["mode"] == "unlabelled"
    assert selection["judged_with"].startswith("normalisation re-estimated")
    assert counts["recordings_used"] + counts["below_confidence"] == counts["recordings"]
    report = json.loads((run / "learn_report.json").read_text())
    assert report["rounds"][0]["new_test"]["recordings"] == \
        report["parent"]["new_test"]["recordings"] > 0
    assert report["rounds"][0]["old_test"]["recordings"] > 0  # the forgetting check
    # every new recording was read, whatever folder it sat in
    built = json.loads((run / "data" / "build_report.json").read_text())
    assert built["labels"] == ["UNLABELLED"]


def test_adapted_copy_reestimates_the_statistics_only(trained_run: Path,
                                                      dataset: Path) -> None:
    model, _ = load_model(trained_run / "best.pt")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = load_split(dataset / SPLIT_FILES["VALIDATION"], "yes")
    adapted = adapted_copy(model, data, torch.device("cpu"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    assert not adapted.training
    learnt = [k for k in before if not k.startswith("norm_") and "running" not in k
              and "num_batches" not in k]
    assert all(torch.equal(before[k], adapted.state_dict()[k]) for k in learnt)
    mean, std = data.band_statistics()
    assert torch.allclose(adapted.norm_mean, mean) and not torch.equal(adapted.norm_mean,
                                                                       model.norm_mean)
    # the first batch norm: the average of its input's batch means, batch by batch
    x = (data.mel.float() - mean[:, None]) / std.clamp_min(1e-3)[:, None]
    with torch.no_grad():
        conv = adapted.features[0][0](x.unsqueeze(1))
    means = [conv[lo:lo + adapt.BATCH].mean(dim=(0, 2, 3))
             for lo in range(0, data.segments, adapt.BATCH)]
    assert torch.allclose(adapted.features[0][1].running_mean, torch.stack(means).mean(0),
                          atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_unlabelled_run_on_cuda(labelled_run, trained_run: Path, dataset: Path,
                                site_b: Path, tmp_path: Path) -> None:
    """Adaptation, selection, fine-tuning and the report on the GPU."""
    done, _ = labelled_run
    run = tmp_path / "run"
    assert main(["-q", "learn", str(trained_run / "best.pt"), str(site_b), "--out", str(run),
                 "--unlabelled", "--confidence", "0.5", "--truth", str(done / "data"),
                 "--replay", str(dataset), "--rounds", "1", "--epochs", "1", "--device",
                 "cuda"]) == 0
    report = json.loads((run / "learn_report.json").read_text())
    assert report["rounds"][0]["new_test"]["recordings"] > 0


# --- bad input ------------------------------------------------------------------------------

def _one_line(capsys, message: str) -> None:
    err = capsys.readouterr().err
    assert message in err and err.count("leakhunter: error") == 1 and "Traceback" not in err


@pytest.mark.parametrize("flags,message", [
    (["--seed", "-1"], "seed must be in [0, 4294967295]"),
    (["--workers", "-1"], "workers must be at least 0"),
    (["--no-adapt"], "--no-adapt is for --unlabelled runs"),  # labelled: nothing to adapt
])
def test_meaningless_settings_are_one_line(tmp_path: Path, capsys, flags: list[str],
                                           message: str) -> None:
    assert main(["learn", str(tmp_path / "best.pt"), str(tmp_path / "new"), "--out",
                 str(tmp_path / "run"), *FAST, *flags]) == 1
    _one_line(capsys, message)


def test_other_classes_are_refused(trained_run: Path, tmp_path: Path, capsys) -> None:
    rec = tmp_path / "rec"
    synthesize(rec, SynthConfig(count=3, duration_s=1.0, sensors_per_label=1,
                                labels=("CRACK", "LEAK", "NOLEAK"), out_of_water=0))
    before = _sha256(trained_run / "best.pt")
    assert main(["learn", str(trained_run / "best.pt"), str(rec), "--out",
                 str(tmp_path / "run"), *FAST]) == 1
    _one_line(capsys, "differ from the model's")
    assert _sha256(trained_run / "best.pt") == before


def test_no_usable_recordings(trained_run: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "new" / "LEAK"
    folder.mkdir(parents=True)
    (folder / "broken.wav").write_bytes(b"not audio")
    (tmp_path / "new" / "NOLEAK").mkdir()
    (tmp_path / "new" / "NOLEAK" / "empty.wav").write_bytes(b"")
    assert main(["learn", str(trained_run / "best.pt"), str(tmp_path / "new"), "--out",
                 str(tmp_path / "run"), *FAST]) == 1
    _one_line(capsys, "no usable recordings")


def test_unlabelled_with_nothing_confident(trained_run: Path, site_b: Path, tmp_path: Path,
                                           capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    real_select = rounds.select
    # above any recording's confidence: nothing may be taken as a pseudo-label
    monkeypatch.setattr(rounds, "select", lambda *a: real_select(*a[:-1], 1.01))
    before = _sha256(trained_run / "best.pt")
    assert main(["learn", str(trained_run / "best.pt"), str(site_b), "--out",
                 str(tmp_path / "run"), "--unlabelled", *FAST]) == 1
    _one_line(capsys, "reached --confidence")
    assert _sha256(trained_run / "best.pt") == before


def test_too_few_sensors_says_group_by_and_the_same_out_takes_the_fix(
        trained_run: Path, tmp_path: Path, capsys) -> None:
    """One sensor per label cannot be split by sensor: the error names learn's own
    --group-by, and the run that failed before its first round is started again in place
    (not refused as a folder to --resume, which would fail the same way)."""
    rec = tmp_path / "rec"
    synthesize(rec, SynthConfig(**{**TINY.__dict__, "count": 6, "sensors_per_label": 1,
                                   "out_of_water": 0, "seed": 3}))
    args = ["learn", str(trained_run / "best.pt"), str(rec), "--out", str(tmp_path / "run"),
            *FAST]
    assert main(args) == 1
    _one_line(capsys, "too few sensors to split by sensor; add recordings or use --group-by "
                      "recording")
    assert (tmp_path / "run" / "learn.json").is_file()
    assert main(["-q", *args, "--group-by", "recording"]) == 0
    assert (tmp_path / "run" / "round-1" / "best.pt").is_file()


def test_run_folder_rules(labelled_run, trained_run: Path, site_b: Path, tmp_path: Path,
                          capsys) -> None:
    done, _ = labelled_run
    assert main(["learn", str(trained_run / "best.pt"), str(site_b), "--out", str(done),
                 *FAST]) == 1
    _one_line(capsys, "use --resume")
    assert main(["learn", "--resume", str(tmp_path)]) == 1
    _one_line(capsys, "no learn run to resume")
    assert main(["learn", "--resume", str(done), "--keep", "0.3", "--no-adapt", "--rounds",
                 "3"]) == 1
    _one_line(capsys, "only --rounds and --device may change, not --keep, --no-adapt")
    assert main(["learn", str(trained_run / "best.pt"), "--out", str(tmp_path / "x")]) == 1
    _one_line(capsys, "learn needs MODEL NEW_INPUT")
    inside = tmp_path / "holder"
    inside.mkdir()
    shutil.copy(trained_run / "best.pt", inside / "best.pt")
    assert main(["learn", str(inside / "best.pt"), str(site_b), "--out", str(inside),
                 "--overwrite", *FAST]) == 1
    _one_line(capsys, "holds the parent model")
    assert (inside / "best.pt").exists()
