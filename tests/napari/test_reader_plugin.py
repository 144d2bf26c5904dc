"""The npe2 reader and sample data, through npe2 (no viewer, no Qt)."""

from __future__ import annotations

import warnings
from pathlib import Path

import npe2
import numpy as np
import pytest
from conftest import needs_shared, real_file

from napari_nanosims import load_mims, write_im
from napari_nanosims._napari.layers import contrast_limits, field_unit, header_rows
from napari_nanosims._napari.reader import get_reader, read_im_layers


@pytest.fixture(autouse=True, scope="module")
def _plugin_registered():
    """Make npe2's plugin manager know the installed plugin (napari does this at start)."""
    manager = npe2.PluginManager.instance()
    if "napari-nanosims" not in manager._manifests:
        manager.discover(include_npe1=False)
    assert "napari-nanosims" in manager._manifests


def _read(paths):
    return npe2.read([str(p) for p in paths], plugin_name="napari-nanosims", stack=False)


def test_demo_through_npe2(demo_file):
    layers = _read([demo_file["path"]])
    assert len(layers) == 7
    names = [kwargs["name"] for _, kwargs, _ in layers]
    assert names == [f"{label} · cells_01" for label in demo_file["labels"]]
    ids = {kwargs["metadata"]["nanosims"]["acquisition_id"] for _, kwargs, _ in layers}
    assert len(ids) == 1  # one acquisition, found by id, never by name
    for index, (data, kwargs, kind) in enumerate(layers):
        assert kind == "image"
        assert data.shape == (20, 256, 256) and data.dtype == np.dtype("<u4")
        assert kwargs["scale"] == pytest.approx((1.0, 20 / 256, 20 / 256))
        assert kwargs["units"] == ("", "µm", "µm")
        assert kwargs["axis_labels"] == ("frame", "y", "x")
        meta = kwargs["metadata"]["nanosims"]
        assert meta["detector_index"] == index and meta["label"] == demo_file["labels"][index]
        assert meta["mass_amu"] == demo_file["masses_amu"][index]
        assert meta["source_path"].endswith("cells_01.im") and meta["history"] == []
        assert meta["header"]["n_frames"] == 20
        low, high = kwargs["contrast_limits"]
        assert 0 <= low < high
    assert layers[6][1]["colormap"] == "gray"  # SE
    assert len({kwargs["colormap"] for _, kwargs, _ in layers[:6]}) == 6
    assert [kwargs["visible"] for _, kwargs, _ in layers] == [False, False, True] + [False] * 4
    np.testing.assert_array_equal(np.asarray(layers[2][0]),
                                  np.asarray(load_mims(demo_file["path"]).data[:, 2]))


@needs_shared
def test_real_files_through_npe2():
    layers = _read([real_file("OpenMIMS_doc_040702_06-05mos-03a.im")])
    assert [kwargs["name"] for _, kwargs, _ in layers] == [
        label + " · OpenMIMS_doc_040702_06-05mos-03a" for label in ("12C", "13C", "12C 14N",
                                                                    "12C 15N")]
    assert [kwargs["metadata"]["nanosims"]["detector"] for _, kwargs, _ in layers] == [
        "EM1", "EM2", "EM3", "EM4"]
    data, kwargs, _ = layers[0]
    assert data.shape == (1, 512, 512) and data.dtype == np.dtype("u2")
    assert kwargs["scale"][1] == pytest.approx(0.08086439732142857)


def test_several_files_each_get_their_layers(tmp_path, demo_file):
    other = write_im(tmp_path / "other.im", np.ones((2, 2, 8, 8), np.uint32), ["12C", "SE"],
                     [12.0, 0.0], 4.0, 100)
    # napari hands a multi-file drop to the reader as a list when stacking is on.
    layers = npe2.read([demo_file["path"], str(other)], plugin_name="napari-nanosims",
                       stack=True)
    assert len(layers) == 9
    assert layers[-1][1]["name"] == "SE · other"
    ids = [kwargs["metadata"]["nanosims"]["acquisition_id"] for _, kwargs, _ in layers]
    assert len(set(ids)) == 2 and ids[0] != ids[-1]


def test_get_reader_refuses_foreign_files(tmp_path):
    from PIL import Image

    pillow_im = tmp_path / "pillow.im"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Pillow deprecates IM writing
        Image.new("L", (8, 8), 7).save(pillow_im, format="IM")
    garbage = tmp_path / "garbage.im"
    garbage.write_bytes(b"\x00\xff" * 100)
    empty = tmp_path / "empty.im"
    empty.write_bytes(b"")
    for path in (pillow_im, garbage, empty, tmp_path / "missing.im", tmp_path / "x.tif"):
        assert get_reader(str(path)) is None
    assert get_reader([str(pillow_im), str(garbage)]) is None


def test_header_only_file_gives_a_notification_not_an_error(monkeypatch):
    shown = []
    monkeypatch.setattr("napari_nanosims._napari.reader._show",
                        lambda kind, message: shown.append((kind, message)))
    if not real_file("grain mode cameca.im").exists():
        pytest.skip("shared data missing")
    assert read_im_layers(str(real_file("grain mode cameca.im"))) == [(None,)]
    kind, message = shown[0]
    assert kind == "info" and "no pixel data" in message
    assert "12C2" in message and "2013-12-09 15:15" in message


def test_truncation_warning_reaches_the_user(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_nanosims._napari.reader._show",
                        lambda kind, message: shown.append((kind, message)))
    path = write_im(tmp_path / "cut.im", np.ones((3, 1, 8, 8), np.uint32), ["12C"], [12.0],
                    4.0, 100)
    raw = Path(path).read_bytes()
    Path(path).write_bytes(raw[:-100])
    layers = read_im_layers(path)
    assert layers[0][0].shape == (2, 8, 8)
    assert any(kind == "warning" and "truncated" in message for kind, message in shown)


def test_header_rows_group_every_field_with_units(demo_file):
    from napari_nanosims import read_header

    header = read_header(demo_file["path"]).to_dict()
    groups = dict(header_rows(header))
    listed = {name for rows in groups.values() for name, _, _ in rows}
    assert set(header) <= listed
    raster = [row for row in groups["Anal_param_nano (beam, detectors)"]
              if row[0] == "raster_um"][0]
    assert raster[1:] == ("20", "µm")
    rows = {name: unit for name, _, unit in groups["Tab_mass (masses)"]}
    assert rows["mass 2: 12C 14N"] == "amu, EM3 (slot 3)"
    assert rows["mass 6: SE"] == "amu, SE (slot 8)"
    assert field_unit("dwell_time_us") == "µs" and field_unit("labels") == ""


def test_contrast_limits_from_a_subsample():
    stack = np.zeros((10, 64, 64), np.uint16)
    stack[:, :32] = 100
    low, high = contrast_limits(stack)
    assert low == 0 and high == 100
    assert contrast_limits(np.zeros((2, 4, 4))) == (0.0, 1.0)


def test_our_ome_tiffs_reopen_as_images_with_scale_names_and_history(tmp_path):
    """The sums, variance and stack that `nanosims process` writes come back as image
    layers (not napari's random-colour labels), every other TIFF is left to others."""
    import tifffile

    from napari_nanosims import make_demo_im
    from napari_nanosims._napari.reader import get_results_reader
    from napari_nanosims.batch.single import process_file
    from napari_nanosims.steps.recipe import default_recipe

    demo = make_demo_im(tmp_path / "cells.im", n_frames=12, seed=2)
    _, paths = process_file(demo["path"], default_recipe(), tmp_path / "o")
    sums = npe2.read([str(paths["sums"])], plugin_name="napari-nanosims", stack=False)
    assert [kwargs["name"] for _, kwargs, _ in sums] == [
        f"sum {label} · cells" for label in demo["labels"]]
    stored = tifffile.imread(paths["sums"])
    for index, (data, kwargs, kind) in enumerate(sums):
        assert kind == "image" and data.ndim == 2
        np.testing.assert_array_equal(data, stored[index])
        assert kwargs["scale"] == pytest.approx((20 / 256, 20 / 256))
        assert kwargs["units"] == ("µm", "µm")
        info = kwargs["metadata"]["nanosims"]
        assert [h["step"] for h in info["history"]] == ["remove_hot_pixels", "align_frames",
                                                        "exclude_frames", "sum_frames"]
        assert info["header"]["sample_name"] == "demo cells"
        low, high = kwargs["contrast_limits"]
        assert low < high
    assert [kwargs["colormap"] for _, kwargs, _ in sums][-1] == "gray"  # SE
    assert sum(kwargs["visible"] for _, kwargs, _ in sums) == 1
    stack = npe2.read([str(paths["stack"])], plugin_name="napari-nanosims", stack=False)
    assert stack[0][0].shape == (12, 256, 256)
    assert stack[0][1]["name"] == f"aligned {demo['labels'][0]} · cells"
    assert stack[0][1]["scale"] == pytest.approx((1.0, 20 / 256, 20 / 256))
    variance = npe2.read([str(paths["variance"])], plugin_name="napari-nanosims", stack=False)
    assert variance[-1][1]["name"] == "variance coverage · cells"
    # Any other TIFF is not ours: napari's own readers take it.
    plain = tmp_path / "plain.ome.tif"
    tifffile.imwrite(plain, np.zeros((3, 4, 5), np.uint32), ome=True)
    assert get_results_reader(str(plain)) is None
    assert get_results_reader(str(tmp_path / "missing.ome.tif")) is None
    assert get_results_reader(str(paths["sums"])) is not None


def test_nrrd_reader_and_writers_through_npe2(tmp_path):
    """A .nrrd stack (as the Stabilizer returns it) opens with its masses and scale; the
    layers save back to .nrrd and to OME-TIFF through npe2's writers."""
    import nrrd

    from napari_nanosims import make_demo_im, open_acquisition
    from napari_nanosims._napari.reader import get_nrrd_reader
    from napari_nanosims.export.nrrd import read_nrrd, write_nrrd
    from napari_nanosims.export.ometiff import read_ome_tiff

    demo = make_demo_im(tmp_path / "cells.im", n_frames=4, seed=5)
    acquisition = open_acquisition(demo["path"])
    written = write_nrrd(acquisition, tmp_path / "cells.nrrd")
    data, header = nrrd.read(str(written))
    stabilised = tmp_path / "cells_stabilized.nrrd"
    nrrd.write(str(stabilised), data.astype(np.float32), header)
    layers = npe2.read([str(stabilised)], plugin_name="napari-nanosims", stack=False)
    assert [kwargs["name"] for _, kwargs, _ in layers] == [
        f"{label} · cells_stabilized" for label in demo["labels"]]
    assert layers[2][1]["scale"] == pytest.approx((1.0, 20 / 256, 20 / 256))
    np.testing.assert_array_equal(layers[2][0], np.asarray(acquisition.counts)[:, 2])
    other = tmp_path / "volume.nrrd"
    nrrd.write(str(other), np.zeros((3, 4, 5), np.float32))
    assert get_nrrd_reader(str(other)) is None  # not OpenMIMS's layout: someone else's
    # Save the layers back, through npe2's writers.
    saved = npe2.write(str(tmp_path / "saved.nrrd"), layers, plugin_name="napari-nanosims")
    again = read_nrrd(saved[0])
    assert again.labels == acquisition.labels
    np.testing.assert_array_equal(again.counts, np.asarray(acquisition.counts))
    tif = npe2.write(str(tmp_path / "saved.ome.tif"), layers, plugin_name="napari-nanosims")
    content = read_ome_tiff(tif[0])
    assert content["axes"] == "TCYX" and content["channel_names"] == list(acquisition.labels)
    assert content["pixel_size_um"] == pytest.approx(20 / 256)
