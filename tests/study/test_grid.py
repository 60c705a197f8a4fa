"""The study's segmentation grid: which long x short pairs the front-end and CNN can use."""

from __future__ import annotations

import dataclasses

import pytest

from leakhunter.config import FeatureConfig, ModelConfig
from leakhunter.config.study import PAPER_LONG_S, PAPER_SHORT
from leakhunter.errors import ConfigError
from leakhunter.study.grid import Cell, make_grid

SMALL = ModelConfig(width=4, dense=8)  # the input sizes a CNN takes do not depend on widths


def test_the_papers_grid_at_8192_hz_has_24_cells_and_one_invalid_pair() -> None:
    grid = make_grid(PAPER_LONG_S, PAPER_SHORT, FeatureConfig(sample_rate=8192), ModelConfig())
    assert len(grid.cells) == 24
    assert grid.invalid == [(0.125, 1024, "a 0.125 s segment at 8192 Hz is 1024 points: one "
                             "1024-point frame (at least 2 frames needed)")]
    # long segment major, in the order given
    assert [(c.long_s, c.short_points) for c in grid.cells] == [
        (s, n) for s in PAPER_LONG_S for n in PAPER_SHORT if (s, n) != (0.125, 1024)]
    chosen = next(c for c in grid.cells if c.key == "long0.25-short512")
    assert (chosen.feature.n_mels, chosen.feature.frames_per_segment) == (32, 7)


def test_at_4096_hz_the_short_segments_lose_the_long_frames() -> None:
    # 0.125 s = 512 points: one 512-point frame, and shorter than a 1024-point frame;
    # 0.25 s = 1024 points: one 1024-point frame; 0.5 s = 2048 points: three
    grid = make_grid(PAPER_LONG_S, PAPER_SHORT, FeatureConfig(sample_rate=4096), SMALL)
    assert len(grid.cells) == 22
    assert [(s, n) for s, n, _ in grid.invalid] == [(0.125, 512), (0.125, 1024), (0.25, 1024)]
    reasons = [r for _, _, r in grid.invalid]
    assert reasons[0] == ("a 0.125 s segment at 4096 Hz is 512 points: one 512-point frame "
                          "(at least 2 frames needed)")
    assert reasons[1] == "a long segment (512 samples) is shorter than one frame (n_fft=1024)"
    assert reasons[2].startswith("a 0.25 s segment at 4096 Hz is 1024 points: one 1024-point")
    assert min(c.feature.frames_per_segment for c in grid.cells) == 3


def test_a_cell_is_the_base_with_its_segment_and_frame() -> None:
    base = FeatureConfig(sample_rate=8192, segment_overlap=0.25, frame_overlap=0.75,
                         n_mels=40, fmin=20.0, fmax=3000.0, top_db=60.0)
    grid = make_grid([0.5, 0.25], [256, 128], base, SMALL)
    assert [(c.long_s, c.short_points) for c in grid.cells] == [
        (0.5, 256), (0.5, 128), (0.25, 256), (0.25, 128)]
    for cell in grid.cells:
        assert (cell.feature.segment_s, cell.feature.n_fft) == (cell.long_s, cell.short_points)
        assert dataclasses.replace(cell.feature, segment_s=base.segment_s,
                                   n_fft=base.n_fft) == base
    # the base's frame overlap sets the frames: 0.25 s = 2048 points, hop 64 of 256
    assert grid.cells[2].feature.frames_per_segment == 1 + (2048 - 256) // 64


def test_keys_are_unique_and_stable() -> None:
    grid = make_grid(PAPER_LONG_S, PAPER_SHORT, FeatureConfig(), SMALL)
    keys = [c.key for c in grid.cells]
    assert len(set(keys)) == len(keys)
    assert keys[:2] == ["long0.125-short64", "long0.125-short128"]
    assert "long0.25-short512" in keys and keys[-1] == "long1-short1024"
    assert Cell(0.75, 64, FeatureConfig(segment_s=0.75, n_fft=64)).key == "long0.75-short64"
    # values that differ only far behind the point still get their own keys
    assert Cell(0.1, 64, FeatureConfig()).key != Cell(0.1 + 1e-12, 64, FeatureConfig()).key


def test_a_cnn_that_cannot_take_the_input_is_reported() -> None:
    # the flatten head's constructor runs its features in training mode: batch norm refuses
    # the 1 x 1 map that six poolings make of 32 x 3; the avg+max head takes it
    deep = ModelConfig(width=4, dense=8, blocks=6)
    grid = make_grid([0.125], [512], FeatureConfig(), dataclasses.replace(deep, pool="flatten"))
    assert grid.cells == []
    (long_s, points, reason), = grid.invalid
    assert (long_s, points) == (0.125, 512)
    assert reason.startswith("the CNN cannot take 32 x 3 inputs: ")
    assert len(make_grid([0.125], [512], FeatureConfig(), deep).cells) == 1


@pytest.mark.parametrize("long_s, short", [([], [64]), ([0.25], []), ([0.25, 0.25], [64]),
                                            ([0.25], [64, 64])])
def test_an_empty_or_repeating_grid_is_refused(long_s: list, short: list) -> None:
    with pytest.raises(ConfigError):
        make_grid(long_s, short, FeatureConfig(), SMALL)
