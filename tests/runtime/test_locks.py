"""The one-writer-per-folder lock (leakhunter.runtime.locks): re-entrant, and refuses a
file. Two writers on one folder are refused by build and train (tests/dataset/test_build.py,
tests/training/test_train.py)."""

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
