"""write_mosaic_tiffs: one stitched OME-TIFF per mass, all or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import mosaic, read_ome_tiff, write_mosaic_tiffs
from napari_nanosims.export._files import OutputExistsError

DWELL_US = 100.0


def _tiles(im_factory):
    a = np.zeros((2, 3, 24, 24), dtype=np.uint32)
    a[:, 0] = 4  # 12C: 4 counts per frame and pixel
    a[:, 1] = 1
    a[:, 2] = 9
    b = a.copy()
    b[:, 0] = 10
    labels = ("12C", "12C 14N", "SE")
    first = im_factory("tile_a.im", a, labels=labels, raster_um=12.0, dwell_time_us=DWELL_US,
                       stage_position_um=(-200, 400, 0))
    second = im_factory("tile_b.im", b, labels=labels, raster_um=12.0, dwell_time_us=DWELL_US,
                        stage_position_um=(-200, 406, 0))  # 6 µm = 12 px to the right
    return first, second


def test_each_mass_is_written_with_image_coverage_and_placement(im_factory, tmp_path):
    first, second = _tiles(im_factory)
    tiles = mosaic([first, second]).nudged(1, (0.0, 0.5))  # one more pixel to the right
    out = tmp_path / "out"
    out.mkdir()
    written = write_mosaic_tiffs(tiles, out)
    assert {label: path.name for label, path in written.items()} == {
        "12C": "tile_a_mosaic_12C.ome.tif", "12C 14N": "tile_a_mosaic_12C14N.ome.tif",
        "SE": "tile_a_mosaic_SE.ome.tif"}
    content = read_ome_tiff(written["12C"])
    assert content["axes"] == "CYX" and content["channel_names"] == ["12C", "coverage"]
    assert content["pixel_size_um"] == pytest.approx(0.5)
    image, coverage = content["data"]
    dwell_s = DWELL_US * 1e-6
    assert image.shape == (24, 24 + 13)
    # columns 0-12: tile a alone; 13-23: both (equal times: the mean); 24-36: tile b alone
    np.testing.assert_allclose(image[:, :13], np.float32(4 / dwell_s), rtol=1e-6)
    np.testing.assert_allclose(image[:, 13:24], np.float32(7 / dwell_s), rtol=1e-6)
    np.testing.assert_allclose(image[:, 24:], np.float32(10 / dwell_s), rtol=1e-6)
    np.testing.assert_allclose(coverage[:, 13:24], np.float32(4 * dwell_s), rtol=1e-6)
    description = content["description"]
    assert description["kind"] == "mosaic" and description["label"] == "12C"
    assert description["tiles"][1]["offset_um"] == [0.0, 6.5]
    assert description["tiles"][1]["nudge_um"] == [0.0, 0.5]
    assert description["tiles"][1]["stage_position_um"] == [-200.0, 406.0, 0.0]
    assert [r["step"] for r in description["history"]] == ["mosaic", "nudge_tile"]


def test_an_existing_output_stops_everything_and_leaves_nothing(im_factory, tmp_path):
    first, second = _tiles(im_factory)
    tiles = mosaic([first, second])
    taken = tmp_path / "tile_a_mosaic_SE.ome.tif"
    taken.write_text("mine")
    before = set(tmp_path.iterdir())
    with pytest.raises(OutputExistsError, match="tile_a_mosaic_SE.ome.tif"):
        write_mosaic_tiffs(tiles, tmp_path)
    assert set(tmp_path.iterdir()) == before and taken.read_text() == "mine"
    written = write_mosaic_tiffs(tiles, tmp_path, labels=["12c"], stem="run1")
    assert [p.name for p in written.values()] == ["run1_mosaic_12C.ome.tif"]


def test_a_failure_while_writing_leaves_no_file(im_factory, tmp_path, monkeypatch):
    first, second = _tiles(im_factory)
    tiles = mosaic([first, second])
    calls = []

    def failing_stitch(label):
        calls.append(label)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return type(tiles).stitch(tiles, label)

    monkeypatch.setattr(tiles, "stitch", failing_stitch)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        write_mosaic_tiffs(tiles, out)
    assert list(out.iterdir()) == []
    with pytest.raises(ValueError, match="no channel '15N'"):
        write_mosaic_tiffs(tiles, out, labels=["15N"])
    assert list(out.iterdir()) == []
