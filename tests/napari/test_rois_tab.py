"""The ROIs tab driven as a user would (issue 19, items 4, 5 and the ROI table of 13):
paint with the New ROI layer, paint with napari's own New Labels button on a stack, draw
shapes in µm, read the table in a ~300 px panel, and no "Inconsistent units" warning.
Runs under Xvfb (pytest --xvfb-backend=xvfb)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_nanosims import load_mims

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

PIXEL_UM = 20 / 256  # the demo's raster (µm) over its pixels


@pytest.fixture
def notifications():
    from napari.utils.notifications import notification_manager

    shown = []
    notification_manager.notification_ready.connect(shown.append)
    yield shown
    notification_manager.notification_ready.disconnect(shown.append)


@pytest.fixture
def tab(make_napari_viewer, demo_file):
    from napari_nanosims._napari.widgets import RoiWidget

    viewer = make_napari_viewer()
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    return viewer, RoiWidget(viewer)


def _settled(widget):
    from napari_nanosims._napari.widgets._common import LayerAdder

    return (widget._runner.worker is None and not LayerAdder._active
            and not widget._debounce.isActive())


def _measured(qtbot, widget, rois: int):
    qtbot.waitUntil(lambda: widget.statistics is not None and _settled(widget)
                    and widget.statistics.roi.nunique() == rois, timeout=30_000)


def _sums(demo_file):
    mims = load_mims(demo_file["path"])
    data = np.asarray(mims.data, dtype=np.float64)
    return {label: data[:, i].sum(axis=0) for i, label in enumerate(mims.header.labels)}


def _no_unit_warning(viewer, notifications):
    canvas = viewer.window._qt_viewer.canvas
    if hasattr(canvas, "_update_world_units"):
        canvas._update_world_units()  # what napari runs at its next draw
    assert viewer.layers.extent.units is not None  # napari's test for consistent units
    assert not [n for n in notifications if "Inconsistent units" in str(n.message)]


def test_new_roi_layer_paint_and_measure(tab, qtbot, demo_file, notifications):
    from qtpy.QtCore import Qt

    viewer, widget = tab
    qtbot.mouseClick(widget.new_button.native, Qt.MouseButton.LeftButton)
    layer = viewer.layers.selection.active
    assert isinstance(layer, napari.layers.Labels) and widget.roi_layer.value is layer
    assert layer.data.shape == (256, 256) and layer.mode == "paint"
    assert layer.selected_label == 1
    assert tuple(layer.scale) == pytest.approx((PIXEL_UM, PIXEL_UM))
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    # paint two ROIs with the layer's own brush
    layer.brush_size = 9
    layer.paint((60, 60), 1)
    layer.paint((180, 120), 2)
    _measured(qtbot, widget, 2)
    sums = _sums(demo_file)
    for roi in (1, 2):
        inside = np.asarray(layer.data) == roi
        row = widget.statistics[(widget.statistics.roi == roi)
                                & (widget.statistics.quantity == "12C 15N/12C 14N")].iloc[0]
        assert row.n_pixels == inside.sum() > 20
        assert row.value == pytest.approx(sums["12C 15N"][inside].sum()
                                          / sums["12C 14N"][inside].sum())
    assert widget.table.rowCount() == 2
    _no_unit_warning(viewer, notifications)


def test_napari_new_labels_stack_is_projected_with_a_note(tab, qtbot, demo_file):
    viewer, widget = tab
    viewer.layers.selection.active = viewer.layers[0]
    viewer.window._qt_viewer.layerButtons.newLabelsButton.click()  # napari's own button
    stack = viewer.layers.selection.active
    assert isinstance(stack, napari.layers.Labels) and stack.data.ndim == 3  # frame, y, x
    data = np.zeros(stack.data.shape, np.int32)
    data[0, 10:30, 10:30] = 1  # painted on frame 0
    data[3, 100:110, 50:70] = 2  # and on frame 3
    stack.data = data
    widget.roi_layer.reset_choices()
    widget.roi_layer.value = stack
    _measured(qtbot, widget, 2)
    counts = widget.statistics.drop_duplicates("roi").set_index("roi").n_pixels
    assert counts[1] == 400 and counts[2] == 200
    assert "maximum over them" in widget.summary.value  # the one-line note


def test_shapes_in_micrometres_give_the_right_pixels(tab, qtbot, demo_file):
    viewer, widget = tab
    # a rectangle from (2, 3) to (6, 8) µm in world coordinates, layer scale 1
    rectangle = np.array([[2.0, 3.0], [2.0, 8.0], [6.0, 8.0], [6.0, 3.0]])
    shapes = viewer.add_shapes([rectangle], shape_type="rectangle", name="cells in µm",
                               units=("µm", "µm"))
    widget.roi_layer.reset_choices()
    widget.roi_layer.value = shapes
    widget.run()
    _measured(qtbot, widget, 1)
    row = widget.statistics.drop_duplicates("roi").iloc[0]
    # 4 x 5 µm = 51.2 x 64 pixels of 0.078125 µm
    assert row.n_pixels == pytest.approx((4 / PIXEL_UM) * (5 / PIXEL_UM), rel=0.05)
    assert row.centroid_y_um == pytest.approx(4.0, abs=2 * PIXEL_UM)
    assert row.centroid_x_um == pytest.approx(5.5, abs=2 * PIXEL_UM)
    # the same rectangle drawn on a layer with the image's scale (its data in pixels)
    in_pixels = viewer.add_shapes([rectangle / PIXEL_UM], shape_type="rectangle",
                                  scale=(PIXEL_UM, PIXEL_UM), units=("µm", "µm"))
    widget.roi_layer.reset_choices()
    widget.roi_layer.value = in_pixels
    first = widget.statistics
    qtbot.waitUntil(lambda: widget.statistics is not first and _settled(widget),
                    timeout=30_000)
    assert widget.statistics.drop_duplicates("roi").iloc[0].n_pixels == row.n_pixels
    # shapes off the image: a clear refusal, no table
    outside = viewer.add_shapes([rectangle + 100], shape_type="rectangle",
                                units=("µm", "µm"))
    widget.roi_layer.reset_choices()
    widget.roi_layer.value = outside
    widget._debounce.stop()
    assert widget.run() is None
    assert "no ROI on the image" in widget.summary.value


def test_find_cells_measure_and_ratio_add_no_unit_warnings(tab, qtbot, notifications):
    from napari_nanosims._napari.widgets import RatioWidget

    viewer, widget = tab
    widget.find_cells()
    qtbot.waitUntil(lambda: widget.statistics is not None and _settled(widget),
                    timeout=30_000)
    rois = widget.roi_layer.value
    numbers = [layer for layer in viewer.layers if isinstance(layer, napari.layers.Points)]
    for layer in [rois] + numbers:
        assert [str(u) for u in layer.units][-2:] == ["micrometer", "micrometer"]
        assert tuple(layer.scale)[-2:] == pytest.approx((PIXEL_UM, PIXEL_UM))
    # the ROI numbers sit on their ROIs: the label under each number is that number
    (points,) = numbers
    for (y, x), roi in zip(points.data, points.features["roi"], strict=True):
        assert rois.data[int(round(y)), int(round(x))] in (roi, 0)
    ratio = RatioWidget(viewer)
    ratio._debounce.stop()
    ratio.expression.value = "13C/12C"
    ratio._debounce.stop()
    ratio.run()
    qtbot.waitUntil(lambda: ratio.derived is not None and _settled(ratio), timeout=30_000)
    _no_unit_warning(viewer, notifications)


def test_roi_table_fits_a_300_px_panel_with_the_main_result(tab, qtbot, demo_file):
    from napari_nanosims._napari.widgets._roi_table import P_ROLE, SIGMA_ROLE, VALUE_ROLE

    viewer, widget = tab
    widget.native.resize(300, 900)
    widget.native.show()
    qtbot.waitExposed(widget.native)
    widget.find_cells()
    qtbot.waitUntil(lambda: widget.statistics is not None and _settled(widget),
                    timeout=30_000)
    table = widget.table
    assert [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())] == \
        ["ROI", "px", "12C 15N/12C 14N"]
    qtbot.waitUntil(lambda: table.viewport().width() > 0, timeout=5_000)
    assert not table.horizontalScrollBar().isVisible()
    metrics = table.fontMetrics()
    pattern = re.compile(r"^(-?[\d.]+) ± ([\d.]+) \(p ?(<0\.001|[\d.e-]+)\)$")
    for row in range(table.rowCount()):
        item = table.item(row, 2)
        text = item.text()
        match = pattern.match(text)
        assert match, text
        value, sigma = item.data(VALUE_ROLE), item.data(SIGMA_ROLE)
        # the value is shown to the decimal place of sigma's second significant digit
        assert float(match.group(1)) == pytest.approx(value, abs=sigma / 10 + 1e-12)
        assert float(match.group(2)) == pytest.approx(sigma, rel=0.06)
        assert len(match.group(1).replace("-", "").replace(".", "").lstrip("0")) <= 4
        p = item.data(P_ROLE)
        if p < 0.001:
            assert match.group(3) == "<0.001"
        else:  # 2 decimals, 3 under 0.01
            assert float(match.group(3)) == round(p, 2 if p >= 0.01 else 3)
        # the whole text is visible in its column (Qt keeps 3 px either side)
        assert metrics.horizontalAdvance(text) + 6 <= table.columnWidth(2)
        assert "µm²" in item.toolTip()  # the full numbers behind the cell
    # sorting by the value column sorts by the number, not the text
    table.sortItems(2)
    values = [table.item(row, 2).data(VALUE_ROLE) for row in range(table.rowCount())]
    finite = [v for v in values if np.isfinite(v)]
    assert finite == sorted(finite)


def test_value_sigma_format_examples():
    from napari_nanosims._napari.widgets._roi_table import format_result, format_value_sigma

    assert format_result(0.005173, 0.0001234, 0.5612) == "0.00517 ± 0.00012 (p 0.56)"
    assert format_result(-12.34, 4.51, 0.0002) == "-12.3 ± 4.5 (p<0.001)"
    assert format_result(1.0, 0.5, 0.0027) == "1.00 ± 0.50 (p 0.003)"
    assert format_value_sigma(1234.5678, 0.0123) == "1235 ± 0.012"  # 4 digits at most
    assert format_value_sigma(5.1734e-6, 1.2e-7) == "5.17e-06 ± 1.2e-07"
    assert format_result(0.1, 0.01, float("nan")) == "0.100 ± 0.010"
    assert format_value_sigma(float("nan"), 0.1) == "-"
