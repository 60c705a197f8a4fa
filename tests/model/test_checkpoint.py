"""Checkpoint files (leakhunter.model.checkpoint): a pickle-carrying file is refused, and a
reader never sees a half-written checkpoint while it is replaced."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import torch

from leakhunter.cli import main
from leakhunter.model import checkpoint


def test_pickle_carrying_checkpoint_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"kind": "model", "format_version": 1, "payload": Path("/etc/passwd")}, path)
    with pytest.raises(checkpoint.CheckpointError, match="refused"):
        checkpoint.load(path, "model")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(path, tmp_path / "run" / "checkpoints" / "last.pt")
    assert main(["train", "--resume", str(tmp_path / "run")]) == 1
    assert "refused" in capsys.readouterr().err


def test_reader_never_sees_a_half_written_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    states = [{"kind": "model", "model": {"w": torch.full((20_000,), float(i))}, "i": i}
              for i in range(2)]
    checkpoint.save(path, states[0])
    failures: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                state = checkpoint.load(path, "model")
                assert float(state["model"]["w"][0]) == state["i"]
            except Exception as exc:  # any torn read is a failure
                failures.append(repr(exc))

    reader = threading.Thread(target=read)
    reader.start()
    for k in range(40):
        checkpoint.save(path, states[k % 2])
    done.set()
    reader.join()
    assert failures == []
