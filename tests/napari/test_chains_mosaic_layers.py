"""Chains and mosaics in a viewer: same-field offers, tile layers by translation, nudges."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from napari_nanosims import concatenate, mosaic, open_acquisition, read_ome_tiff

napari = pytest.importorskip("napari")

T0 = dt.datetime(2024, 5, 2, 14, 0)
LABELS = ("12C", "12C 14N", "SE")


def _file(im_factory, name, value, stage, minutes=0, frames=2):
    counts = np.full((frames, 3, 12, 12), value, dtype=np.uint32)
    return im_factory(name, counts, labels=LABELS, raster_um=6.0, dwell_time_us=100.0,
                      stage_position_um=stage, analysis_date=T0 + dt.timedelta(minutes=minutes))


def _open(viewer, *paths):
    from napari_nanosims._napari.layers import file_layer_data

    ids = []
    for path in paths:
        acquisition = open_acquisition(path)
        ids.append(acquisition.acquisition_id)
        for data, kwargs, _ in file_layer_data(acquisition):
            viewer.add_image(data, **kwargs)
    return ids


def test_files_of_one_field_are_offered_and_joined(im_factory):
    from napari.components import ViewerModel

    from napari_nanosims._napari.chains import chain_layer_data, offer_text, same_field_groups

    second = _file(im_factory, "run_2.im", 2, (500, 600, 0), minutes=20)
    first = _file(im_factory, "run_1.im", 1, (500, 600, 0))
    other = _file(im_factory, "elsewhere.im", 3, (900, 600, 0), minutes=40)
    viewer = ViewerModel()
    _open(viewer, second, other, first)
    groups = same_field_groups(viewer)
    assert groups == [[str(first), str(second)]]  # in acquisition order, without the other
    assert offer_text(groups[0]) == "run_1.im, run_2.im: one acquisition (same field)"
    layers = chain_layer_data(groups[0])
    assert [kwargs["name"] for _, kwargs, _ in layers] == [
        "12C · run_1_chain2", "12C 14N · run_1_chain2", "SE · run_1_chain2"]
    data, kwargs, _ = layers[0]
    assert data.shape == (4, 12, 12)
    assert np.array_equal(np.asarray(data)[:, 0, 0], [1, 1, 2, 2])
    history = kwargs["metadata"]["nanosims"]["history"]
    assert [h["step"] for h in history] == ["concatenate"]
    for data, kwargs, _ in layers:  # the chain's layers are not offered again
        viewer.add_image(data, **kwargs)
    assert same_field_groups(viewer) == [[str(first), str(second)]]


def test_tiles_are_translated_not_resampled_and_nudges_are_kept(im_factory):
    from napari.components import ViewerModel

    from napari_nanosims._napari.mosaic_layers import (
        MOSAIC_KEY,
        mosaic_from_layers,
        mosaic_ids,
        nudge_tile,
        place_layers,
    )

    left = _file(im_factory, "left.im", 1, (100, 200, 0))
    right = _file(im_factory, "right.im", 5, (103, 206, 0))  # 3 µm down, 6 µm right
    viewer = ViewerModel()
    ids = _open(viewer, left, right)
    data_before = [layer.data for layer in viewer.layers]
    placed = place_layers(viewer, ids)
    assert [layer.data for layer in viewer.layers] == data_before  # the same arrays
    translations = {layer.name: tuple(layer.translate) for layer in viewer.layers}
    assert translations["12C · left"] == (0.0, 0.0, 0.0)
    assert translations["SE · right"] == (0.0, 3.0, 6.0)
    assert mosaic_ids(viewer) == [placed.mosaic_id]
    nudge_tile(viewer, placed.mosaic_id, 1, (0.5, -1.0))
    assert tuple(viewer.layers["12C 14N · right"].translate) == (0.0, 3.5, 5.0)
    entry = viewer.layers["12C · right"].metadata["nanosims"][MOSAIC_KEY]
    assert entry["stage_offset_um"] == [3.0, 6.0] and entry["nudge_um"] == [0.5, -1.0]
    # A layer moved by hand (its translate edited) counts as a nudge as well.
    for layer in viewer.layers:
        if layer.name.endswith("left"):
            layer.translate = (0.0, 0.0, 0.5)
    rebuilt = mosaic_from_layers(viewer, placed.mosaic_id)
    np.testing.assert_allclose(rebuilt.nudges_um, [[0.0, 0.5], [0.5, -1.0]])
    np.testing.assert_allclose(rebuilt.offsets_um, [[0.0, 0.5], [3.5, 5.0]])
    assert [r.name for r in rebuilt.history] == ["mosaic", "nudge_tile", "nudge_tile"]


def test_mixed_tiles_are_refused_before_any_layer_moves(im_factory):
    from napari.components import ViewerModel

    from napari_nanosims._napari.mosaic_layers import place_layers

    first = _file(im_factory, "a.im", 1, (0, 0, 0))
    second = _file(im_factory, "b.im", 1, (0, 0, 0))
    viewer = ViewerModel()
    ids = _open(viewer, first, second)
    with pytest.raises(ValueError, match=r"stage position is \(0, 0\) in every file"):
        place_layers(viewer, ids)
    assert all(tuple(layer.translate) == (0.0, 0.0, 0.0) for layer in viewer.layers)


def test_mosaic_layer_data_translates_each_tile(im_factory):
    from napari_nanosims._napari.mosaic_layers import mosaic_layer_data

    tiles = mosaic([_file(im_factory, "a.im", 1, (10, 10, 0)),
                    _file(im_factory, "b.im", 1, (4, 10, 0))])
    layers = mosaic_layer_data(tiles)
    assert [kwargs["translate"] for _, kwargs, _ in layers] == \
        [(0.0, 0.0, 0.0)] * 3 + [(0.0, -6.0, 0.0)] * 3


@pytest.mark.gui
def test_the_widget_offers_joins_places_and_exports(make_napari_viewer, im_factory, tmp_path):
    from napari_nanosims._napari.widgets.chains_mosaics import ChainsMosaicWidget

    viewer = make_napari_viewer()
    widget = ChainsMosaicWidget(viewer)
    first = _file(im_factory, "f_1.im", 1, (50, 50, 0))
    second = _file(im_factory, "f_2.im", 2, (50, 50, 0), minutes=30)
    _open(viewer, first, second)
    assert widget.groups.value == (str(first), str(second))
    assert "one acquisition (same field)" in widget.status.value
    widget.join()
    assert "12C · f_1_chain2" in [layer.name for layer in viewer.layers]
    assert concatenate([first, second]).n_frames == viewer.layers["12C · f_1_chain2"].data.shape[0]
    tile = _file(im_factory, "t.im", 4, (50, 56, 0))
    ids = _open(viewer, first, tile)
    widget.files.value = ids
    widget.place()
    assert widget.mosaic.value is not None
    widget.tile.value, widget.dx.value = 1, 0.5
    widget.nudge()
    out = tmp_path / "out"
    out.mkdir()
    widget.folder.value = out
    widget.export()
    written = sorted(p.name for p in out.iterdir())
    assert written == ["f_1_mosaic_12C.ome.tif", "f_1_mosaic_12C14N.ome.tif",
                       "f_1_mosaic_SE.ome.tif"]
    description = read_ome_tiff(out / written[0])["description"]
    assert description["tiles"][1]["nudge_um"] == [0.0, 0.5]
