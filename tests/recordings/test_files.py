"""Which files are recordings (leakhunter.recordings.files): one rule for build, predict,
learn and predict --watch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.dataset.sources import discover
from leakhunter.decisions.watch import FolderWatcher, is_candidate
from leakhunter.errors import InputError
from leakhunter.recordings.files import find_recordings, is_recording, recordings_under

VISIBLE = ["LEAK/a.wav", "LEAK/c.WAV", "LEAK/sub/b.flac", "NOLEAK/d.wav", "NOLEAK/z/y.ogg"]
HIDDEN = ["LEAK/.hidden.wav", "LEAK/.sync/x.wav", "LEAK/sub/.cache/old.wav",
          "NOLEAK/.Trash/e.wav", ".git/LEAK/f.wav"]
OTHER = ["LEAK/notes.txt", "NOLEAK/d.wav.json"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Label folders with recordings, hidden files, hidden folders and other files."""
    root = tmp_path / "tree"
    tone = (0.1 * np.sin(np.arange(4096) * 0.05)).astype(np.float32)
    for name in VISIBLE + HIDDEN:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower(), "WAV")
        sf.write(path, tone, 4096, format=fmt)
    for name in OTHER:
        (root / name).write_text("not a recording")
    return root


def names(paths: list[Path] | set[Path], root: Path) -> set[str]:
    return {Path(p).resolve().relative_to(root.resolve()).as_posix() for p in paths}


def test_the_same_tree_gives_the_same_recordings_to_build_predict_and_watch(
        tree: Path) -> None:
    build = names([s.path for s in discover(tree).sources], tree)
    predict = names(find_recordings([tree]), tree)
    with FolderWatcher([tree], settle_s=0.0) as watcher:
        for path in tree.rglob("*"):  # every file as an event would name it
            if path.is_file():
                watcher.nominate(path)
        watch = names(watcher.ready(), tree)
    assert build == predict == watch == set(VISIBLE)


def test_hidden_parts_count_below_the_searched_folder_only(tmp_path: Path) -> None:
    root = tmp_path / ".config" / "uploads"  # a search may start inside a hidden folder
    assert is_recording(root / "a.wav", root) and is_recording(root / "sub" / "A.FLAC", root)
    assert not is_recording(root / ".a.wav", root)
    assert not is_recording(root / ".partial" / "a.wav", root)
    assert not is_recording(root / "a.txt", root)
    assert is_recording(Path(".hidden-folder/a.wav"))  # without a root: the name alone
    assert not is_candidate(root / "a.wav.part", root) and is_candidate(root / "a.wav", root)


def test_named_files_and_patterns(tree: Path) -> None:
    # a file named explicitly is taken whatever its name; a pattern takes recordings only
    named = find_recordings([tree / "LEAK" / ".hidden.wav", tree / "LEAK" / "notes.txt"])
    assert names(named, tree) == {"LEAK/.hidden.wav", "LEAK/notes.txt"}
    pattern = find_recordings([str(tree / "LEAK" / "*")])  # a matching folder is searched
    assert names(pattern, tree) == {"LEAK/a.wav", "LEAK/c.WAV", "LEAK/sub/b.flac"}
    both = find_recordings([tree / "LEAK", tree / "LEAK" / "a.wav"])  # each once
    assert len(both) == len(set(both)) == 3
    assert recordings_under(tree / "LEAK")[:2] == [tree / "LEAK" / "a.wav",
                                                   tree / "LEAK" / "c.WAV"]


def test_missing_inputs_and_empty_results_are_errors(tree: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        find_recordings([tree / "nothing"])
    with pytest.raises(InputError, match="matches nothing"):
        find_recordings([str(tree / "*.mp3")])
    (tree / "only-hidden").mkdir()
    (tree / "LEAK" / ".hidden.wav").rename(tree / "only-hidden" / ".hidden.wav")
    with pytest.raises(InputError, match="no recordings found"):
        find_recordings([tree / "only-hidden"])
    # a hidden folder named as the search's start is searched: its own name is the choice
    assert names(find_recordings([tree / ".git"]), tree) == {".git/LEAK/f.wav"}
