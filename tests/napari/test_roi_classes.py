"""The ROIs tab's classes, summary, plots and exports (issue 21, napari part), driven as a
user would: find cells, select rows and Set class, mark the control, read the summary,
paint a class layer, apply a rule, take classes from another image's labels, export the
tables, open the plots dock and follow the selection both ways.

The library is the oracle: every number the tab shows is compared with ``roi_table``,
``normalise``, ``assimilation`` and ``compare_classes`` run in the test on the same ROIs.
Runs under Xvfb (pytest --xvfb-backend=xvfb)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_nanosims import (
    LABEL_PRESETS,
    assimilation,
    classes_from_labels,
    classes_from_rule,
    compare_classes,
    normalise,
    open_acquisition,
    roi_table,
)

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

RATIO = "12C 15N/12C 14N"
ATOM_PERCENT = "100*12C 15N/(12C 14N+12C 15N)"
EXPRESSIONS = "12C15N/12C14N; 100*12C15N/(12C14N+12C15N)"


def _settled(widget):
    from napari_nanosims._napari.widgets._common import LayerAdder

    return (widget._runner.worker is None and not LayerAdder._active
            and not widget._debounce.isActive())


@pytest.fixture
def measured(make_napari_viewer, qtbot, demo_file):
    """The ROIs tab after Find cells on the demo file, shown at the panel's width."""
    from napari_nanosims._napari.widgets import RoiWidget

    viewer = make_napari_viewer()
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    widget = RoiWidget(viewer)
    widget.native.resize(290, 900)
    widget.native.show()
    qtbot.waitExposed(widget.native)
    widget.expressions.value = EXPRESSIONS
    widget.find_cells()
    qtbot.waitUntil(lambda: widget.statistics is not None and _settled(widget),
                    timeout=60_000)
    labels = np.asarray(widget.roi_layer.value.data)
    assert labels.max() >= 6
    yield viewer, widget, labels, open_acquisition(demo_file["path"])
    # a layer added re-measures (debounced): let it end before the viewer closes
    qtbot.waitUntil(lambda: _settled(widget), timeout=60_000)


def _rois_in_table(widget):
    from napari_nanosims._napari.widgets._roi_table import table_rois

    return table_rois(widget.table, range(widget.table.rowCount()))


def _click_rows(qtbot, widget, rois):
    """Ctrl-click the rows of ``rois`` in the table, as a user selects several."""
    from qtpy.QtCore import Qt

    table = widget.table
    widget.result_tabs.setCurrentIndex(0)
    table.clearSelection()
    for row, roi in enumerate(_rois_in_table(widget)):
        if roi in rois:
            table.scrollTo(table.model().index(row, 0))
            rect = table.visualRect(table.model().index(row, 0))
            qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                             Qt.KeyboardModifier.ControlModifier, rect.center())
    selected = {index.row() for index in table.selectedIndexes()}
    assert {_rois_in_table(widget)[row] for row in selected} == set(rois)


def _set_class(qtbot, widget, rois, name):
    from qtpy.QtCore import Qt

    _click_rows(qtbot, widget, rois)
    panel = widget.classes
    panel.class_name.setCurrentText("")
    qtbot.keyClicks(panel.class_name.lineEdit(), name)
    qtbot.mouseClick(panel.set_button, Qt.MouseButton.LeftButton)


def _class_table(table, quantities):
    return pd.concat([compare_classes(table, q) for q in quantities], ignore_index=True)


def test_rows_get_classes_control_summary_and_rates(measured, qtbot):
    from napari_nanosims._napari.widgets._roi_table import format_value_sigma

    viewer, widget, labels, acquisition = measured
    rois = sorted(int(r) for r in np.unique(labels) if r)
    controls, cells = rois[:4], rois[4:]
    _set_class(qtbot, widget, controls, "control")
    _set_class(qtbot, widget, cells, "cells")
    classes = {roi: "control" if roi in controls else "cells" for roi in rois}
    assert widget.classes.assigned == classes
    # the table's class column
    table = widget.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[:3] == ["ROI", "class", "px"]
    assert {roi: table.item(row, 1).text() for row, roi in
            enumerate(_rois_in_table(widget))} == classes
    # the control marked in its drop-down; the summary of the atom-% of 15N
    panel = widget.classes
    widget.result_tabs.setCurrentIndex(1)
    panel.quantity.value = ATOM_PERCENT
    panel.control.value = "control"
    expected_table = normalise(roi_table(acquisition, labels, EXPRESSIONS.split("; "),
                                         classes=classes), ATOM_PERCENT, "control")
    expected = _class_table(expected_table, [ATOM_PERCENT, ATOM_PERCENT + " excess"])
    pd.testing.assert_frame_equal(panel.class_table, expected)
    text = panel.summary.text()
    summary = expected[expected.test == "summary"]
    for quantity in (ATOM_PERCENT, ATOM_PERCENT + " excess"):
        for _, row in summary[summary.quantity == quantity].iterrows():
            assert format_value_sigma(row["mean"], row.se) in text
    enriched = summary[summary.quantity == ATOM_PERCENT].set_index("class")
    assert f"enriched {int(enriched.loc['cells', 'n_enriched'])}/{len(cells)}" in text
    assert "Welch t cells vs control" in text and "Kruskal-Wallis" in text
    # rates: the natural value comes from the 15N preset, in atom-%
    panel.rates.value = True
    assert panel.natural.value == pytest.approx(
        100 * LABEL_PRESETS["15N via CN"].natural_fraction, abs=1e-7)
    panel.substrate.value = 98.0
    panel.hours.value = 24.0
    panel.dilution.value = 0.1
    rated = assimilation(expected_table, ATOM_PERCENT, natural=panel.natural.value,
                         substrate=98.0, hours=24.0, dilution=0.1)
    expected = _class_table(rated, [ATOM_PERCENT + what for what in
                                    ("", " excess", " x_net", " k")])
    pd.testing.assert_frame_equal(panel.class_table, expected)
    k = expected[(expected.quantity == ATOM_PERCENT + " k") & (expected.test == "summary")]
    for _, row in k.iterrows():
        assert format_value_sigma(row["mean"], row.se) in panel.summary.text()
    # an ROI's class removed: an empty name
    _set_class(qtbot, widget, [cells[0]], "")
    assert cells[0] not in panel.assigned and len(panel.assigned) == len(rois) - 1


def test_paint_a_class_layer_and_name_its_values(measured, qtbot):
    viewer, widget, labels, _ = measured
    panel = widget.classes
    widget.result_tabs.setCurrentIndex(1)
    panel.names.value = "1: control; 2: cells"
    layer = panel.new_class_layer()
    assert panel.class_layer.value is layer and layer.mode == "paint"
    assert layer.data.shape == labels.shape
    assert tuple(layer.scale) == pytest.approx(tuple(widget.roi_layer.value.scale))
    stats = widget.statistics.drop_duplicates("roi").set_index("roi")
    first, second = sorted(stats.index)[:2]
    for roi, value in ((first, 1), (second, 2)):  # a brush as wide as the cell
        layer.brush_size = int(2 * stats.loc[roi, "equivalent_diameter_um"]
                               / layer.scale[0]) + 2
        ys, xs = np.nonzero(labels == roi)
        layer.paint((int(ys.mean()), int(xs.mean())), value)
    names = {1: "control", 2: "cells"}
    qtbot.waitUntil(lambda: len(panel.assigned) >= 2, timeout=10_000)
    expected = {roi: names[value] for roi, value in
                classes_from_labels(labels, np.asarray(layer.data), 0.5).items()}
    assert panel.assigned == expected
    assert expected[first] == "control" and expected[second] == "cells"
    # erasing the paint takes the class away
    layer.data = np.zeros_like(np.asarray(layer.data))
    qtbot.waitUntil(lambda: not panel.assigned, timeout=10_000)


def test_rule_and_another_images_labels(measured, qtbot):
    viewer, widget, labels, _ = measured
    panel = widget.classes
    ratios = widget.statistics[widget.statistics.quantity == RATIO].value
    threshold = float(np.nanmedian(ratios))
    panel.rule.value = f"12C15N/12C14N > {threshold!r}"
    panel.rule_class.value = "high"
    panel.otherwise.value = "low"
    panel.rule_button.native.click()
    expected = classes_from_rule(widget.statistics, panel.rule.value, name="high",
                                 otherwise="low")
    assert panel.assigned == expected and set(expected.values()) == {"high", "low"}
    # a "FISH" segmentation on a finer grid (2 x 2 sub-pixels per pixel): its values
    # are the classes, mapped through µm
    image = widget.roi_layer.value
    fish = np.where(labels % 3 == 0, 7, 0).astype(np.int32)
    fine = np.repeat(np.repeat(fish, 2, axis=0), 2, axis=1)
    layer = viewer.add_labels(fine, name="FISH", scale=tuple(np.asarray(image.scale) / 2),
                              translate=tuple(np.asarray(image.translate)
                                              - np.asarray(image.scale) / 4),
                              units=("µm", "µm"))
    panel.class_layer.reset_choices()
    panel.class_layer.value = layer
    panel.names.value = "7: FISH+"
    panel.layer_button.native.click()
    from_fish = classes_from_labels(labels, fish, 0.5)
    assert from_fish and all(panel.assigned[roi] == "FISH+" for roi in from_fish)
    assert all(panel.assigned[roi] == expected[roi] for roi in expected
               if roi not in from_fish)


def test_export_tables_with_their_sidecar(measured, qtbot, tmp_path):
    from napari_nanosims.analysis.classes import parse_class_list
    from napari_nanosims.export.tables import parquet_available

    viewer, widget, labels, acquisition = measured
    rois = sorted(int(r) for r in np.unique(labels) if r)
    classes = {roi: "control" if roi in rois[:3] else "cells" for roi in rois}
    _set_class(qtbot, widget, rois[:3], "control")
    _set_class(qtbot, widget, rois[3:], "cells")
    panel = widget.classes
    panel.quantity.value = RATIO
    panel.control.value = "control"
    panel.rates.value = True
    panel.natural.value = 0.0036765
    panel.substrate.value = 0.98
    written = widget.export_table(tmp_path / "cells.csv")
    names = {path.name for path in written}
    expected_names = {"cells.csv", "cells.json", "cells_classes.csv"}
    if parquet_available():
        expected_names |= {"cells.parquet", "cells_classes.parquet"}
    assert names == expected_names and all(path.exists() for path in written)
    per_roi = pd.read_csv(written[0])
    expected = normalise(roi_table(acquisition, labels, EXPRESSIONS.split("; "),
                                   classes=classes), RATIO, "control")
    expected = assimilation(expected, RATIO, natural=0.0036765, substrate=0.98)
    assert (per_roi.file == acquisition.path).all() and len(per_roi) == len(expected)
    merged = per_roi.merge(expected, on=["roi", "quantity"], suffixes=("", "_expected"))
    assert len(merged) == len(expected)
    np.testing.assert_allclose(merged.value, merged.value_expected, rtol=1e-9)
    assert (merged["class"] == merged["class_expected"]).all()
    per_class = pd.read_csv(tmp_path / "cells_classes.csv")
    oracle = _class_table(expected, [RATIO, RATIO + " excess", RATIO + " x_net"])
    np.testing.assert_allclose(per_class["mean"], oracle["mean"], rtol=1e-9)
    np.testing.assert_allclose(per_class["p_value"], oracle["p_value"], rtol=1e-9)
    sidecar = json.loads(written[1].read_text())
    assert {int(k): v for k, v in sidecar["classes"].items()} == classes
    assert sidecar["control"] == "control" and sidecar["quantity"] == RATIO
    assert sidecar["rates"] == {"natural": 0.0036765, "substrate": 0.98, "hours": None,
                                "dilution": 0.0}
    assert sidecar["history"] == [dict(h) for h in acquisition.history_dicts()]
    steps = {step["step"]: step["parameters"] for step in sidecar["steps"]}
    assert parse_class_list(steps["classify"]["rois"]) == classes
    assert steps["normalise"] == {"quantity": RATIO, "control": "control"}
    assert steps["assimilation"]["fraction"] == RATIO
    assert sidecar["tables"]["class csv"] == "cells_classes.csv"
    # never replaced silently: the files stay as they were
    before = {path: path.read_bytes() for path in written}
    _set_class(qtbot, widget, rois[:1], "other")
    assert widget.export_table(tmp_path / "cells.csv") is None
    assert all(path.read_bytes() == content for path, content in before.items())
    assert widget.export_table(tmp_path / "cells.csv", overwrite=True) is not None
    assert json.loads(written[1].read_text())["classes"][str(rois[0])] == "other"


def test_plots_dock_follows_the_selection_both_ways(measured, qtbot):
    from qtpy.QtCore import QPoint, Qt

    from napari_nanosims._napari.widgets.roi_plots import DENSITY, DOCK_NAME, SCATTER
    from napari_nanosims.analysis.accumulate import accumulate
    from napari_nanosims.analysis.ratios import evaluate

    viewer, widget, labels, acquisition = measured
    rois = sorted(int(r) for r in np.unique(labels) if r)
    _set_class(qtbot, widget, rois[:3], "control")
    widget.classes.control.value = "control"
    widget.plots_button.native.click()
    assert DOCK_NAME in viewer.window.dock_widgets
    plots = widget.plots
    plots.show()
    plots.resize(600, 400)
    qtbot.waitExposed(plots)
    numbers, x, y = plots._points
    assert sorted(numbers) == rois  # one point per ROI, classed or not
    ratios = widget.statistics[widget.statistics.quantity == plots.y.currentText()]
    assert np.allclose(np.sort(y), np.sort(ratios.value.to_numpy()), equal_nan=True)
    # rows selected in the table are ringed in the plot
    _click_rows(qtbot, widget, rois[1:3])
    assert sorted(plots.highlighted) == rois[1:3]
    ring = plots._ring.get_offsets()
    chosen = np.isin(numbers, rois[1:3])
    np.testing.assert_allclose(np.sort(ring[:, 1]), np.sort(y[chosen]))
    # a click on a point selects its row
    target = rois[-1]
    at = int(np.flatnonzero(numbers == target)[0])
    plots.canvas.draw()
    axes = plots.canvas.figure.axes[0]
    px, py = axes.transData.transform((x[at], y[at]))
    ratio = plots.canvas.device_pixel_ratio
    height = plots.canvas.figure.bbox.height
    qtbot.mouseClick(plots.canvas, Qt.MouseButton.LeftButton,
                     pos=QPoint(int(px / ratio), int((height - py) / ratio)))
    qtbot.waitUntil(lambda: plots.highlighted == [target], timeout=5_000)
    selected = {index.row() for index in widget.table.selectedIndexes()}
    assert [_rois_in_table(widget)[row] for row in selected] == [target]
    # one quantity against another, per ROI and per pixel
    plots.kind.setCurrentText(SCATTER)
    plots.x.setCurrentText("12C 14N")
    plots.y.setCurrentText(RATIO)
    numbers, x, y = plots._points
    counts = widget.statistics[widget.statistics.quantity == "12C 14N"].set_index("roi")
    np.testing.assert_allclose(x, counts.loc[numbers, "value"].to_numpy())
    plots.kind.setCurrentText(DENSITY)
    (hexagons,) = plots.canvas.figure.axes[0].collections
    sums = accumulate(acquisition)
    x, y = (evaluate(sums, q).value[labels > 0] for q in ("12C 14N", RATIO))
    shown = int((np.isfinite(x) & np.isfinite(y)).sum())
    assert shown > 100 and hexagons.get_array().sum() == shown  # every ROI pixel, once
    assert f"{shown} ROI pixels" in plots.note.text()


def _layout_checks():
    """tests/napari/test_layout.py's checks (that folder is no package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "layout_checks", Path(__file__).with_name("test_layout.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_classes_page_readable_at_first_start_size(make_napari_viewer, qtbot, im_factory):
    """At napari's first-start size (1089x661) every label and button of the classes
    page, rates shown, is readable once scrolled to, and nothing needs sideways
    scrolling."""
    from qtpy.QtWidgets import QAbstractButton, QApplication, QLabel

    from napari_nanosims._napari.viewer import open_viewer

    checks = _layout_checks()
    counts = np.random.default_rng(0).poisson(3.0, size=(2, 4, 48, 48)).astype(np.uint16)
    counts[:, :, 10:20, 10:20] += 30
    counts[:, :, 30:40, 25:35] += 30
    path = im_factory("page.im", counts=counts, labels=["12C", "13C", "12C 14N", "12C 15N"])
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1089, 661)
    open_viewer([str(path)], viewer=viewer)
    panel = viewer.window.dock_widgets["NanoSIMS (napari-nanosims)"]
    qtbot.waitUntil(lambda: panel.isVisible(), timeout=10_000)
    panel.tabs.setCurrentIndex([panel.tabs.tabText(i) for i in
                                range(panel.tabs.count())].index("ROIs"))
    widget = panel.rois
    widget.find_cells()
    qtbot.waitUntil(lambda: widget.statistics is not None and _settled(widget),
                    timeout=60_000)
    widget.classes.set_class("control", rois=[1])
    widget.classes.set_class("cells", rois=[2])
    widget.classes.control.value = "control"
    widget.result_tabs.setCurrentIndex(1)
    widget.classes.rates.value = True
    QApplication.processEvents()
    page = widget.classes.page
    inner = page.widget()
    assert inner.width() <= page.viewport().width()  # no sideways scrolling
    shown = [w for w in inner.findChildren((QLabel, QAbstractButton))
             if w.isVisible() and w.text().strip()]
    assert any("control: n 1" in w.text() for w in shown)  # the summary
    assert len(shown) > 15
    for part in shown:
        page.ensureWidgetVisible(part)
        QApplication.processEvents()
        assert part.text() not in checks._cut_labels(inner), part.text()
