"""ROI files from the ROIs tab: an ImageJ/OpenMIMS ROI set with groups opens as an ROI
layer whose classes reach the table; the measured ROIs are written back and read again
pixel for pixel; a file drawn on another image is refused in one line. Runs under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")
pytest.importorskip("roifile")


def _settled(widget):
    from napari_nanosims._napari.widgets._common import LayerAdder

    return (widget._runner.worker is None and not LayerAdder._active
            and not widget._debounce.isActive())


@pytest.fixture
def tab(make_napari_viewer, qtbot, demo_file):
    from napari_nanosims._napari.widgets import RoiWidget

    viewer = make_napari_viewer()
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    widget = RoiWidget(viewer)
    yield viewer, widget
    qtbot.waitUntil(lambda: _settled(widget), timeout=60_000)


def _three_rois(shape):
    labels = np.zeros(shape, np.int32)
    labels[10:20, 12:25] = 1
    labels[40:52, 40:47] = 2
    labels[70:80, 20:30] = 3
    return labels


def test_import_an_roi_set_with_groups_and_measure_it(tab, qtbot, tmp_path):
    from napari_nanosims import write_rois

    viewer, widget = tab
    shape = tuple(widget._image_layer().data.shape)[-2:]
    truth = _three_rois(shape)
    written = write_rois(truth, tmp_path / "cells.rois.zip",
                         classes={1: "control", 2: "labelled", 3: "labelled"})
    from napari_nanosims._napari.widgets._roi_files import import_roi_file

    layer = import_roi_file(widget, written)
    assert layer is not None, widget.summary.value
    np.testing.assert_array_equal(np.asarray(layer.data), truth)
    assert tuple(layer.scale) == tuple(widget._image_layer().scale)[-2:]
    assert widget.roi_layer.value is layer
    qtbot.waitUntil(lambda: widget.statistics is not None and _settled(widget),
                    timeout=60_000)
    assert sorted(widget.statistics["roi"].unique()) == [1, 2, 3]
    assert widget.classes.assigned == {1: "control", 2: "labelled", 3: "labelled"}
    # the measured ROIs go back out pixel for pixel, with their classes
    from napari_nanosims import read_rois
    from napari_nanosims._napari.widgets._roi_files import export_roi_file

    out = export_roi_file(widget, tmp_path / "again.zip")
    assert out is not None, widget.summary.value
    again, classes = read_rois(out, (shape, float(widget._image_layer().scale[-1])))
    np.testing.assert_array_equal(again, truth)
    assert classes == {1: "control", 2: "labelled", 3: "labelled"}
    # never over an existing file unless asked
    assert export_roi_file(widget, out) is None
    assert "exist" in widget.summary.value


def test_a_file_of_another_image_is_refused_in_one_line(tab, tmp_path):
    from napari_nanosims import write_rois
    from napari_nanosims._napari.widgets._roi_files import import_roi_file

    viewer, widget = tab
    before = len(viewer.layers)
    written = write_rois(np.ones((7, 9), np.int32), tmp_path / "other.mat")
    assert import_roi_file(widget, written) is None
    assert widget.summary.value.startswith("Not imported:")
    assert "\n" not in widget.summary.value
    assert len(viewer.layers) == before
