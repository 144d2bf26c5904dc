"""mosaic: fields placed by their stage positions, stitched by counting time."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import Mosaic, mosaic, open_acquisition
from napari_nanosims.testing.factory import poisson_counts

LABELS = ("12C", "SE")
DWELL_US = 100.0
PIXEL_UM = 1.0  # raster 24 µm over 24 px


def _tile(im_factory, name, value, frames, stage, size=24, labels=LABELS):
    """A tile whose every pixel counts ``value`` per frame in the first mass."""
    counts = np.full((frames, len(labels), size, size), value, dtype=np.uint32)
    return im_factory(name, counts, labels=labels, raster_um=size * PIXEL_UM,
                      dwell_time_us=DWELL_US, stage_position_um=stage)


def test_offsets_follow_the_stage_x_down_y_right(im_factory):
    # Stage x (µm) -> rows, stage y (µm) -> columns, both increasing.
    a = _tile(im_factory, "a.im", 1, 2, (5000, 7000, 10))
    b = _tile(im_factory, "b.im", 1, 2, (5010, 7020, 12))
    c = _tile(im_factory, "c.im", 1, 2, (4990, 7003, 10))
    tiles = mosaic([a, b, c])
    assert isinstance(tiles, Mosaic)
    np.testing.assert_allclose(tiles.offsets_um, [[0, 0], [10, 20], [-10, 3]])
    assert tiles.placement_px.tolist() == [[10, 0], [20, 20], [0, 3]]
    assert tiles.shape == (20 + 24, 20 + 24)
    np.testing.assert_allclose(tiles.origin_um, [-10, 0])
    assert tiles.history[0].name == "mosaic"
    assert tiles.history[0].parameters["stage_positions_um"][1] == [5010.0, 7020.0, 12.0]


def test_another_convention_is_one_argument(im_factory):
    a = _tile(im_factory, "a.im", 1, 2, (100, 100, 0))
    b = _tile(im_factory, "b.im", 1, 2, (110, 104, 0))
    flipped = mosaic([a, b], stage_to_image=((-1, 0), (0, 1)))
    np.testing.assert_allclose(flipped.offsets_um, [[0, 0], [-10, 4]])
    swapped = mosaic([a, b], stage_to_image=((0, 1), (1, 0)))
    np.testing.assert_allclose(swapped.offsets_um, [[0, 0], [4, 10]])
    with pytest.raises(ValueError, match="invertible 2 x 2"):
        mosaic([a, b], stage_to_image=((1, 0), (1, 0)))


def test_tiles_of_different_size_line_up_by_their_centres(im_factory):
    big = _tile(im_factory, "big.im", 1, 2, (300, 300, 0), size=24)
    small = _tile(im_factory, "small.im", 1, 2, (300, 300, 0), size=12)
    np.testing.assert_allclose(mosaic([big, small]).offsets_um, [[0, 0], [6, 6]])


def test_stitch_averages_overlaps_by_counting_time(im_factory):
    # a: 3 counts per frame over 2 frames; b: 7 per frame over 6 frames, 12 px lower.
    a = _tile(im_factory, "a.im", 3, 2, (0, 50, 0))
    b = _tile(im_factory, "b.im", 7, 6, (12, 50, 0))
    image, coverage = mosaic([a, b]).stitch("12C")
    dwell_s = DWELL_US * 1e-6
    assert image.shape == coverage.shape == (36, 24)
    # rows 0-11: a alone; 12-23: both; 24-35: b alone
    np.testing.assert_allclose(image[:12], 3 / dwell_s)
    np.testing.assert_allclose(image[12:24], (3 * 2 + 7 * 6) / (dwell_s * (2 + 6)))
    np.testing.assert_allclose(image[24:], 7 / dwell_s)
    np.testing.assert_allclose(coverage[:12], 2 * dwell_s)
    np.testing.assert_allclose(coverage[12:24], 8 * dwell_s)
    rows = np.arange(36)[:, None] + np.zeros((1, 24))
    np.testing.assert_allclose(image * coverage,
                               np.where(rows < 12, 6, np.where(rows < 24, 3 * 2 + 7 * 6, 42)))


def test_stitch_leaves_nan_where_no_tile_counted_and_uses_coverage(im_factory):
    a = _tile(im_factory, "a.im", 5, 4, (0, 0, 0))
    b = _tile(im_factory, "b.im", 5, 4, (30, 30, 0))
    tiles = mosaic([a, b])
    image, coverage = tiles.stitch("12c")  # labels match without case or spaces
    assert np.isnan(image[0, 40]) and coverage[0, 40] == 0
    # An aligned tile: frames that cover only part of it count for that part only.
    opened = open_acquisition(a)
    cover = np.ones((4, 24, 24))
    cover[:2, :, :6] = 0.0
    partial = mosaic([opened.replace(coverage=cover), b])
    counts, time_s = partial.tile_counts(0, "12C")
    expected_time = DWELL_US * 1e-6 * cover.sum(axis=0)
    np.testing.assert_allclose(time_s, expected_time)
    np.testing.assert_allclose(counts, 20)


def test_a_nudge_is_kept_as_an_offset_and_recorded(im_factory):
    a = _tile(im_factory, "a.im", 1, 2, (0, 10, 0))
    b = _tile(im_factory, "b.im", 1, 2, (20, 10, 0))
    tiles = mosaic([a, b])
    nudged = tiles.nudged(1, (-1.5, 2.0)).nudged(1, (0.5, 0.0))
    np.testing.assert_allclose(nudged.nudges_um, [[0, 0], [-1.0, 2.0]])
    np.testing.assert_allclose(nudged.offsets_um, [[0, 0], [19.0, 2.0]])
    np.testing.assert_allclose(tiles.offsets_um, [[0, 0], [20, 0]])  # unchanged
    assert [r.name for r in nudged.history] == ["mosaic", "nudge_tile", "nudge_tile"]
    assert nudged.history[-1].parameters == {"tile": 1, "file": "b.im", "nudge_um": [-1.0, 2.0]}
    assert nudged.mosaic_id == tiles.mosaic_id
    with pytest.raises(ValueError, match="tile must be an index from 0 to 1"):
        tiles.nudged(2, (0, 0))
    with pytest.raises(ValueError, match="two finite numbers"):
        tiles.nudged(0, (np.nan, 0))


def test_zero_stage_positions_everywhere_are_refused(im_factory):
    a = _tile(im_factory, "a.im", 1, 2, (0, 0, 0))
    b = _tile(im_factory, "b.im", 1, 2, (0, 0, 7))
    with pytest.raises(ValueError, match=r"stage position is \(0, 0\) in every file "
                                         r"\(a\.im, b\.im\)"):
        mosaic([a, b])


def test_mixed_masses_and_pixel_sizes_are_refused_naming_them(im_factory):
    a = _tile(im_factory, "a.im", 1, 2, (0, 10, 0))
    other = _tile(im_factory, "other.im", 1, 2, (0, 30, 0), labels=("13C", "SE"))
    with pytest.raises(ValueError, match=r"cannot place a\.im and other\.im together: masses "
                                         r"differ \(12C, SE vs 13C, SE\)"):
        mosaic([a, other])
    coarse = im_factory("coarse.im", poisson_counts(2, 2, (24, 24)), labels=LABELS,
                        raster_um=48.0, stage_position_um=(0, 40, 0))
    with pytest.raises(ValueError, match=r"pixel size differs \(1 µm vs 2 µm\)"):
        mosaic([a, coarse])


def test_far_apart_tiles_are_refused_before_allocating(im_factory):
    a = _tile(im_factory, "a.im", 1, 2, (0, 10, 0))
    far = _tile(im_factory, "far.im", 1, 2, (20000, 30010, 0))  # 20 x 30 mm away
    with pytest.raises(ValueError, match=r"a stitched image of 30024 x 20024 px, more than "
                                         r"max_pixels=33554432"):
        mosaic([a, far])
    assert mosaic([a, far], max_pixels=30024 * 20024).shape == (20024, 30024)


def test_an_unknown_mass_names_the_choices(im_factory):
    a = _tile(im_factory, "a.im", 1, 2, (0, 10, 0))
    with pytest.raises(ValueError, match="no channel '15N'"):
        mosaic([a]).stitch("15N")


def test_a_peak_switched_mass_counts_only_its_own_frames(im_factory):
    counts = np.full((3, 4, 24, 24), 2, dtype=np.uint32)  # 3 cycles of 2 B fields
    path = im_factory("ps.im", counts, labels=("12C", "13C", "12C 15N", "SE"),
                      masses_amu=(12, 13, 27, 0), b_fields=(0, 0, 1, 1), raster_um=24.0,
                      dwell_time_us=DWELL_US, stage_position_um=(0, 10, 0))
    tiles = mosaic([path])
    counts_12c, time_12c = tiles.tile_counts(0, "12C")
    np.testing.assert_allclose(time_12c, 3 * DWELL_US * 1e-6)  # 3 of the 6 scans
    np.testing.assert_allclose(counts_12c, 3 * 2)
    image, _ = tiles.stitch("12C")
    np.testing.assert_allclose(image, 2 / (DWELL_US * 1e-6))
