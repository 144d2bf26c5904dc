"""OME-TIFF outputs: types, axes, physical size, channel names, time increment, the header
and history in the description, and a faithful read-back."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_nanosims import make_demo_im, open_acquisition, read_header, read_ome_tiff, run_recipe
from napari_nanosims.batch.single import process_file
from napari_nanosims.export.ometiff import write_ome_tiff
from napari_nanosims.steps.recipe import Recipe


@pytest.mark.parametrize("n_frames, method", [(1, "sequential"), (6, "subpixel")])
def test_process_outputs_round_trip(tmp_path, n_frames, method):
    demo = make_demo_im(tmp_path / "cells.im", n_frames=n_frames, seed=3)
    recipe = Recipe((("align_frames", {"method": method}), ("sum_frames", {})))
    acquisition, paths = process_file(demo["path"], recipe, tmp_path / "o")
    expected = run_recipe(demo["path"], recipe)
    raw = open_acquisition(demo["path"])

    stack = read_ome_tiff(paths["stack"])
    assert stack["axes"] == "TCYX" and stack["data"].shape == expected.counts.shape
    np.testing.assert_array_equal(stack["data"], np.asarray(expected.counts).astype(
        stack["data"].dtype))  # float64 sub-pixel counts are stored as float32
    # Whole counts stay integers; sub-pixel shifts give float32.
    assert stack["data"].dtype == (np.uint32 if method == "sequential" else np.float32)
    assert stack["channel_names"] == list(raw.labels)
    assert stack["pixel_size_um"] == pytest.approx(raw.pixel_size_um)
    duration = raw.header.analysis_duration_s
    if duration:
        assert stack["time_increment_s"] == pytest.approx(
            duration / max(raw.header.n_frames_header, raw.header.n_frames))
    description = stack["description"]
    assert description["kind"] == "stack"
    assert [h["step"] for h in description["history"]] == ["align_frames", "sum_frames"]
    assert description["header"]["sample_name"] == raw.header.sample_name
    assert [c["label"] for c in description["channels"]] == list(raw.labels)
    np.testing.assert_allclose(description["translations_px"], expected.translations)

    sums = read_ome_tiff(paths["sums"])
    assert sums["axes"] == "CYX"
    np.testing.assert_array_equal(sums["data"], np.asarray(expected.sums).astype(
        sums["data"].dtype))
    variance = read_ome_tiff(paths["variance"])
    assert variance["channel_names"] == [f"var({label})" for label in raw.labels] + ["coverage"]
    assert variance["data"].dtype == np.float32


def test_only_our_tiffs_are_claimed(tmp_path):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((4, 5), np.uint16))
    foreign = tmp_path / "foreign.ome.tif"
    tifffile.imwrite(foreign, np.zeros((2, 4, 5), np.uint16), ome=True,
                     metadata={"axes": "CYX", "Description": "a microscope"})
    ours = tmp_path / "ours.ome.tif"
    write_ome_tiff(ours, np.ones((2, 4, 5), np.uint32), "CYX", 0.1, ["12C", "13C"],
                   {"napari_nanosims": 1, "kind": "sums"})
    assert read_ome_tiff(plain, ours_only=True) is None
    assert read_ome_tiff(foreign, ours_only=True) is None
    assert read_ome_tiff(ours, ours_only=True, metadata_only=True)["data"] is None
    with pytest.raises(ValueError, match="not an OME-TIFF"):
        read_ome_tiff(plain)
    # Counts that do not fit 32 bits, or negative ones, are not wrapped.
    write_ome_tiff(tmp_path / "big.ome.tif", np.array([[[2**33, -1]]], np.int64), "CYX", 0.1,
                   ["x"])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "big.ome.tif"), [[2**33, -1]])


def _pixels_attributes(path) -> dict:
    """The OME ``Pixels`` element's attributes, parsed from the file's OME-XML."""
    import xml.etree.ElementTree as ElementTree

    with tifffile.TiffFile(path) as tif:
        root = ElementTree.fromstring(tif.ome_metadata)
    namespace = root.tag.split("}")[0] + "}"
    return dict(root.find(f"{namespace}Image/{namespace}Pixels").attrib)


def _frame_interval_by_hand(path) -> float:
    """The header's analysis duration over the frames it plans (or holds, if more), s."""
    header = read_header(path)
    return header.analysis_duration_s / max(header.n_frames_header, header.n_frames)


def test_every_stack_writer_stores_the_time_between_frames(tmp_path):
    from napari_nanosims._napari.layers import file_layer_data
    from napari_nanosims._napari.writers import write_ome_tiff_layers

    demo = make_demo_im(tmp_path / "cells.im", n_frames=5, seed=2, size=64)
    expected = _frame_interval_by_hand(demo["path"])
    assert expected > 0
    # The write_ome_tiff recipe step.
    run_recipe(demo["path"], Recipe((("write_ome_tiff", {"folder": str(tmp_path / "step")}),)))
    # napari's File > Save Selected Layers as OME-TIFF, all frames and the first two.
    layers = file_layer_data(open_acquisition(demo["path"]))
    write_ome_tiff_layers(str(tmp_path / "layers.ome.tif"), layers)
    first_two = [(np.asarray(data)[:2], attributes, kind) for data, attributes, kind in layers]
    write_ome_tiff_layers(str(tmp_path / "two.ome.tif"), first_two)
    # nanosims process (already had it).
    paths = process_file(demo["path"], Recipe((("sum_frames", {}),)), tmp_path / "process")[1]
    for path in (tmp_path / "step" / "cells.ome.tif", tmp_path / "layers.ome.tif",
                 tmp_path / "two.ome.tif", paths["stack"]):
        pixels = _pixels_attributes(path)
        assert float(pixels["TimeIncrement"]) == pytest.approx(expected), path.name
        assert pixels["TimeIncrementUnit"] == "s"
        assert read_ome_tiff(path)["time_increment_s"] == pytest.approx(expected)
    # Layers that did not come from a file have no duration: no TimeIncrement.
    plain = [(np.ones((3, 8, 8), np.uint16), {"name": "a", "scale": (1.0, 0.5, 0.5)}, "image")]
    write_ome_tiff_layers(str(tmp_path / "plain.ome.tif"), plain)
    assert "TimeIncrement" not in _pixels_attributes(tmp_path / "plain.ome.tif")
