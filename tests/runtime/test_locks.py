"""The one-writer-per-folder lock (leakhunter.runtime.locks): re-entrant, refuses a file,
and leaves no empty folder of its own. Two writers on one folder are refused by build and
train (tests/dataset/test_build.py, tests/training/test_train.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from leakhunter.runtime import locks


def test_lock_is_reentrant_and_refuses_a_file(tmp_path: Path) -> None:
    with locks.folder_lock(tmp_path / "a", "x"):
        with locks.folder_lock(tmp_path / "a", "x"):
            assert (tmp_path / "a" / locks.LOCK_FILE).exists()
        assert (tmp_path / "a" / locks.LOCK_FILE).exists()  # still held by the outer
    assert not (tmp_path / "a" / locks.LOCK_FILE).exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(locks.InputError, match="not a folder"):
        with locks.folder_lock(tmp_path / "f"):
            pass


def test_a_folder_the_lock_created_goes_when_nothing_was_written(tmp_path: Path,
                                                                 capsys) -> None:
    """A command that fails before writing (here build, on an input that does not exist)
    leaves no empty output folder behind; one that wrote keeps its folder, and a folder
    that was there before stays even when empty."""
    from leakhunter.cli import main

    assert main(["build", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert "nowhere" in capsys.readouterr().err and not (tmp_path / "out").exists()
    with locks.folder_lock(tmp_path / "wrote"):
        (tmp_path / "wrote" / "x.txt").write_text("kept")
    assert (tmp_path / "wrote" / "x.txt").read_text() == "kept"
    (tmp_path / "there").mkdir()
    with locks.folder_lock(tmp_path / "there"):
        pass
    assert (tmp_path / "there").is_dir()
