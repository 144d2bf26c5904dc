"""The plugin in a real napari viewer: reader choice, sample data, the panel's widgets in
thread workers (same results as the library and the CLI), the header panel, the window
layout and a screenshot. Runs under Xvfb (pytest --xvfb-backend=xvfb)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_shared, real_file

from napari_nanosims import (
    Recipe,
    clean_hot_pixels,
    load_mims,
    open_acquisition,
    run_recipe,
    write_im,
)

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")


@pytest.fixture
def no_reader_preference():
    from napari.settings import get_settings

    plugins = get_settings().plugins
    saved = dict(plugins.extension2reader)
    plugins.extension2reader = {}
    yield plugins
    plugins.extension2reader = saved


def _kind_layers(viewer, kind):
    return [layer for layer in viewer.layers
            if layer.metadata.get("nanosims", {}).get("kind") == kind]


def _run_and_wait(qtbot, widget, kind, count, timeout=60_000):
    """Run a widget and wait until its worker ended and its ``count`` layers were added."""
    worker = widget.run()
    assert worker is not None
    from napari_nanosims._napari.widgets._common import LayerAdder

    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=timeout)
    qtbot.waitUntil(lambda: not LayerAdder._active, timeout=timeout)  # every layer added
    assert len(_kind_layers(widget._viewer, kind)) == count
    return worker


def test_open_with_plugin_name_and_reader_choice(make_napari_viewer, demo_file,
                                                 no_reader_preference):
    from napari.errors import MultipleReaderError

    viewer = make_napari_viewer()
    with pytest.raises(MultipleReaderError):
        viewer.open(demo_file["path"], plugin=None)
    layers = viewer.open(demo_file["path"], plugin="napari-nanosims")
    assert len(layers) == 7
    assert no_reader_preference.extension2reader["*.im"] == "napari-nanosims"
    again = viewer.open(demo_file["path"], plugin=None)
    assert len(again) == 7
    layer = viewer.layers["12C 14N · cells_01"]
    assert tuple(layer.scale) == pytest.approx((1.0, 20 / 256, 20 / 256))
    assert [str(u) for u in layer.units][1:] == ["micrometer", "micrometer"]
    assert tuple(layer.axis_labels) == ("frame", "y", "x")
    # each opening is its own acquisition, even of the same file
    ids = {layer.metadata["nanosims"]["acquisition_id"] for layer in viewer.layers}
    assert len(ids) == 2


def test_existing_preference_is_kept(make_napari_viewer, demo_file, no_reader_preference):
    no_reader_preference.extension2reader = {"*.im": "napari"}
    viewer = make_napari_viewer()
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    assert no_reader_preference.extension2reader["*.im"] == "napari"


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-nanosims", "nanosims_demo")
    assert [layer.name for layer in viewer.layers][:3] == [
        "12C · nanosims_demo_seed0", "13C · nanosims_demo_seed0",
        "12C 14N · nanosims_demo_seed0"]
    assert len(viewer.layers) == 7
    assert viewer.layers[0].metadata["nanosims"]["detector"] == "EM1"


def _open_demo(viewer, demo_file):
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    return np.asarray(load_mims(demo_file["path"]).data)


def test_hot_pixel_widget_gives_the_library_result(make_napari_viewer, qtbot, demo_file):
    from napari_nanosims._napari.widgets import HotPixelWidget

    viewer = make_napari_viewer()
    widget = HotPixelWidget(viewer)
    assert widget.file.value is None
    data = _open_demo(viewer, demo_file)
    assert widget.file.value is not None
    assert "6 ion masses, 20 frames" in widget.note.value
    widget.show_points.value = True
    qtbot.waitUntil(lambda: widget._preview is None and widget.count_label.value != "-",
                    timeout=30_000)
    expected = clean_hot_pixels(open_acquisition(demo_file["path"]))
    assert widget.count_label.value.startswith(str(int(expected.hot_pixels.sum())))
    overlay = [layer for layer in viewer.layers if "nanosims_overlay" in layer.metadata]
    assert len(overlay) == 1 and overlay[0].data.sum() == expected.hot_pixels.sum()
    _run_and_wait(qtbot, widget, "cleaned", 6)
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    for index, label in enumerate(demo_file["labels"][:6]):
        cleaned = viewer.layers[f"cleaned {label} · cells_01"]
        np.testing.assert_array_equal(cleaned.data, expected.counts[:, index])
        original = viewer.layers[f"{label} · cells_01"]
        assert tuple(cleaned.scale) == tuple(original.scale)
        info = cleaned.metadata["nanosims"]
        assert info["acquisition_id"] == original.metadata["nanosims"]["acquisition_id"]
        assert info["history"][-1]["step"] == "remove_hot_pixels"
        assert info["history"][-1]["parameters"]["outlier_factor"] == 1.999
        # visible only where the source was, and the source is then hidden
        assert cleaned.visible == (label == "12C 14N") and not original.visible
        np.testing.assert_array_equal(original.data, data[:, index])  # untouched
    assert not any(layer.name.startswith("cleaned SE") for layer in viewer.layers)
    _run_and_wait(qtbot, widget, "cleaned", 6)  # replaces, does not pile up


def test_cancel_adds_nothing_and_errors_are_shown(make_napari_viewer, qtbot, demo_file,
                                                  monkeypatch):
    from napari_nanosims._napari.widgets import HotPixelWidget

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    viewer = make_napari_viewer()
    widget = HotPixelWidget(viewer)
    assert widget.run() is None and "Open a NanoSIMS" in shown[-1]
    _open_demo(viewer, demo_file)
    widget.run()
    widget.cancel_button.changed.emit(True)  # what clicking Cancel does
    # The runner forgets its worker on `finished`, which Qt delivers after `returned`:
    # once it is None, a result that was going to add layers would have done so.
    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=30_000)
    assert not _kind_layers(viewer, "cleaned")
    # an error inside the worker reaches the user instead of vanishing
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    monkeypatch.setattr("napari_nanosims.steps.frames.replace_hot_pixels",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    widget.run()
    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=30_000)
    assert errors and "boom" in errors[-1] and "failed" in errors[-1]


def test_parameters_are_remembered_and_reset(make_napari_viewer, demo_file):
    from napari_nanosims._napari.widgets import HotPixelWidget

    viewer = make_napari_viewer()
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    first = HotPixelWidget(viewer)
    first.outlier_factor.value = 2.5
    first.num_outliers.value = 4
    # remembered for this kind of acquisition (6 ion masses, 20 frames)
    second = HotPixelWidget(viewer)
    assert second.outlier_factor.value == 2.5 and second.num_outliers.value == 4
    assert "parameters remembered for 6 ion masses" in second.note.value
    second.reset_defaults()
    assert second.parameters() == {"num_outliers": 3, "kernel_size": 3,
                                   "outlier_factor": 1.999, "min_count": 0.5,
                                   "max_repeat_fraction": 0.1, "num_nonzero": None}
    assert HotPixelWidget(viewer).num_outliers.value == 3


def test_one_ion_channel_file_is_cleaned_with_the_policy_explained(make_napari_viewer, qtbot,
                                                                   tmp_path, monkeypatch):
    from napari_nanosims._napari.widgets import HotPixelWidget

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    rng = np.random.default_rng(1)
    data = rng.poisson(20, size=(12, 2, 24, 24)).astype(np.uint32)
    data[4, 0, 6, 6] = 800
    path = write_im(tmp_path / "one.im", data, ["12C 14N", "SE"], [26, 0], 5, 100)
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-nanosims")
    widget = HotPixelWidget(viewer)
    assert "1 ion mass, 12 frames" in widget.note.value
    assert "num_outliers lowered to 1" in widget.note.value
    _run_and_wait(qtbot, widget, "cleaned", 1)
    assert any("num_outliers=3" in message for message in shown)
    cleaned = viewer.layers["cleaned 12C 14N · one"].data
    assert cleaned[4, 6, 6] < 800


def test_same_stem_in_two_folders_stays_apart(make_napari_viewer, tmp_path):
    from napari_nanosims._napari.widgets import HotPixelWidget

    viewer = make_napari_viewer()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        data = np.full((2, 2, 8, 8), 1 if folder == "a" else 2, np.uint32)
        path = write_im(tmp_path / folder / "cells.im", data, ["12C", "SE"], [12, 0], 5, 100)
        viewer.open(path, plugin="napari-nanosims")
    assert len(viewer.layers) == 4
    widget = HotPixelWidget(viewer)
    names = [name for name, _ in widget._file_choices()]
    assert len(set(names)) == 2 and all("cells" in name for name in names)


def test_align_widget_default_channel_follows_layers_until_chosen(make_napari_viewer,
                                                                  demo_file):
    from napari_nanosims._napari.widgets import AlignFramesWidget

    viewer = make_napari_viewer()
    widget = AlignFramesWidget(viewer)
    _open_demo(viewer, demo_file)
    assert widget.detector.value == 2  # 12C 14N
    widget.detector.value = 0
    viewer.add_image(np.zeros((3, 3)), name="other")
    assert widget.detector.value == 0
    widget.reset_defaults()
    assert widget.detector.value == 2


def test_gui_and_recipe_give_the_same_results(make_napari_viewer, qtbot, demo_file):
    """Clean then align sub-pixel in the GUI equals the same recipe in the library/CLI."""
    from napari_nanosims._napari.widgets import AlignFramesWidget, HotPixelWidget

    viewer = make_napari_viewer()
    _open_demo(viewer, demo_file)
    cleaner, aligner = HotPixelWidget(viewer), AlignFramesWidget(viewer)
    _run_and_wait(qtbot, cleaner, "cleaned", 6)
    aligner.method.value = "sub-pixel"
    _run_and_wait(qtbot, aligner, "aligned sum", 7)
    recipe = Recipe((("remove_hot_pixels", {}),
                     ("align_frames", {"method": "subpixel", "channel": "12C 14N"}),
                     ("sum_frames", {})))
    expected = run_recipe(demo_file["path"], recipe)
    for index, label in enumerate(demo_file["labels"]):
        aligned = viewer.layers[f"aligned {label} · cells_01"]
        np.testing.assert_array_equal(aligned.data, expected.counts[:, index])
        total = viewer.layers[f"sum {label} · cells_01"]
        np.testing.assert_array_equal(total.data, expected.sums[index])
        assert tuple(total.scale) == pytest.approx((20 / 256, 20 / 256))
        assert not total.visible
        assert aligned.visible == (label == "12C 14N")
    # the stacks hold every frame, aligned; the sums went on through exclude and sum
    history = viewer.layers["aligned 12C 14N · cells_01"].metadata["nanosims"]["history"]
    assert [h["step"] for h in history] == ["remove_hot_pixels", "align_frames"]
    history = viewer.layers["sum 12C 14N · cells_01"].metadata["nanosims"]["history"]
    assert [h["step"] for h in history] == ["remove_hot_pixels", "align_frames",
                                            "exclude_frames", "sum_frames"]
    np.testing.assert_array_equal(aligner.plot.translations, expected.translations)
    assert "range y" in aligner.summary.value


def test_header_panel_follows_the_active_layer(make_napari_viewer, qtbot, demo_file):
    from napari_nanosims._napari.widgets import HeaderPanel

    viewer = make_napari_viewer()
    panel = HeaderPanel(viewer)
    qtbot.addWidget(panel)
    assert panel.pages.currentIndex() == 0
    _open_demo(viewer, demo_file)
    viewer.layers.selection.active = viewer.layers["12C 14N · cells_01"]
    assert panel.pages.currentIndex() == 1
    assert panel.header["sample_name"] == "demo cells"
    assert "dwell_time_us" in panel.visible_fields()
    panel.search.setText("em_backgrounds")
    assert panel.visible_fields() == ["em_backgrounds_cps"]
    panel.search.setText("")
    text = panel.copy_json()
    assert '"labels"' in text and "EM3" in text
    viewer.add_image(np.zeros((4, 4)), name="not nanosims")
    assert panel.pages.currentIndex() == 0


def test_closing_the_viewer_while_a_worker_runs(make_napari_viewer, qtbot, tmp_path):
    from napari_nanosims import make_demo_im
    from napari_nanosims._napari.widgets import HotPixelWidget

    truth = make_demo_im(tmp_path / "big.im", n_frames=60)
    viewer = make_napari_viewer()
    viewer.open(truth["path"], plugin="napari-nanosims")
    widget = HotPixelWidget(viewer)
    viewer.window.add_dock_widget(widget)
    worker = widget.run()
    assert worker is not None
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    viewer.close()
    # The result arrives after the viewer is gone: it is dropped quietly (pytest-qt fails
    # the test if an exception reaches the event loop).
    from qtpy.QtWidgets import QApplication

    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
    QApplication.processEvents()  # deliver whatever the worker posted with its last signal


def test_window_leaves_the_image_room(make_napari_viewer, qtbot, demo_file, tmp_path):
    from napari_nanosims._napari.viewer import open_viewer

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 1024)
    open_viewer([demo_file["path"]], viewer=viewer)
    canvas = viewer.window._qt_viewer.canvas.native
    window_width = viewer.window._qt_window.width()
    assert window_width == 1280
    # the dock widgets are laid out by the event loop: wait for the canvas to get at least
    # half of the window (issue 19: readable controls first, the canvas at least half)
    qtbot.waitUntil(lambda: canvas.width() >= 0.5 * window_width, timeout=10_000)
    assert "NanoSIMS (napari-nanosims)" in viewer.window.dock_widgets
    # the whole image is in view: its extent times the zoom fits the canvas, centred
    extent = viewer.layers[0].extent.world[:, 1:]
    scene = getattr(viewer, "scene", None)  # napari >= 0.9 moved the camera there
    camera = scene.camera if scene is not None else viewer.camera
    size_px = (extent[1] - extent[0]) * camera.zoom
    assert size_px[0] <= canvas.height() + 1 and size_px[1] <= canvas.width() + 1
    np.testing.assert_allclose(camera.center[1:], extent.mean(axis=0), atol=1e-6)
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert canvas[..., :3].std() > 5, "the canvas is blank"
    picture = viewer.screenshot(canvas_only=False, flash=False)
    folder = Path(os.environ.get("NANOSIMS_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    from imageio.v3 import imwrite

    imwrite(folder / "viewer_demo.png", picture)
    assert (folder / "viewer_demo.png").stat().st_size > 10_000


@needs_shared
@pytest.mark.parametrize("name", ["OpenMIMS_doc_040702_06-05mos-03a.im",
                                  "OpenMIMS_doc_051117_05-32dRe-03b.im"])
def test_widgets_on_real_files_equal_the_cli(make_napari_viewer, qtbot, tmp_path, name):
    import tifffile

    from napari_nanosims._napari.widgets import AlignFramesWidget, HotPixelWidget
    from napari_nanosims.cli import main

    path = str(real_file(name))
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-nanosims")
    cleaner, aligner = HotPixelWidget(viewer), AlignFramesWidget(viewer)
    cleaner.max_repeat_fraction.value = 1.5  # one frame: turn the repeat rule off
    assert aligner.detector.value == 2
    _run_and_wait(qtbot, cleaner, "cleaned", 4)
    _run_and_wait(qtbot, aligner, "aligned sum", 4)
    assert main(["process", path, "--out", str(tmp_path), "--max-repeat-fraction", "1.5"]) == 0
    sums = tifffile.imread(tmp_path / f"{Path(name).stem}_sums.ome.tif")
    stem = Path(name).stem
    for index, label in enumerate(("12C", "13C", "12C 14N", "12C 15N")):
        np.testing.assert_array_equal(viewer.layers[f"sum {label} · {stem}"].data,
                                      sums[index])


def test_cli_view_builds_the_viewer(make_napari_viewer, demo_file):
    from napari_nanosims._napari.viewer import open_viewer

    viewer = open_viewer([demo_file["path"]], viewer=make_napari_viewer())
    assert len(viewer.layers) == 7
    assert "NanoSIMS (napari-nanosims)" in viewer.window.dock_widgets


def test_corrections_tab_then_alignment_with_frame_selection(make_napari_viewer, qtbot,
                                                              demo_file, monkeypatch):
    from napari_nanosims import correct_dead_time, correct_qsa
    from napari_nanosims._napari.widgets import AlignFramesWidget, CorrectionsWidget, HotPixelWidget

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    viewer = make_napari_viewer()
    _open_demo(viewer, demo_file)
    cleaner, corrector = HotPixelWidget(viewer), CorrectionsWidget(viewer)
    aligner = AlignFramesWidget(viewer)
    assert "12C 14N: EM3, 44 ns" in corrector.info.value and "µs" in corrector.info.value
    corrector.qsa.value = True
    assert corrector.run() is None and "beta" in shown[-1]  # no default beta
    corrector.beta.value = 0.5
    assert corrector.run() is None and "primary current" in shown[-1]
    _run_and_wait(qtbot, cleaner, "cleaned", 6)
    corrector.primary_current.value = 2.0
    corrector.dead_times.value = "12C=30"
    _run_and_wait(qtbot, corrector, "corrected", 6)
    expected = correct_qsa(correct_dead_time(clean_hot_pixels(open_acquisition(
        demo_file["path"])), dead_times_ns={"12C": 30.0}), 0.5, 2.0)
    for index, label in enumerate(demo_file["labels"][:6]):
        layer = viewer.layers[f"corrected {label} · cells_01"]
        np.testing.assert_allclose(layer.data, expected.counts[:, index], rtol=1e-12)
        steps = [h["step"] for h in layer.metadata["nanosims"]["history"]]
        assert steps == ["remove_hot_pixels", "correct_dead_time", "correct_qsa"]
    assert "correct qsa" in corrector.summary.value
    aligner.first_frame.value, aligner.last_frame.value = 5, 14
    _run_and_wait(qtbot, aligner, "aligned sum", 7)
    aligned = viewer.layers["aligned 12C 14N · cells_01"]
    assert [h["step"] for h in aligned.metadata["nanosims"]["history"]][:3] == [
        "remove_hot_pixels", "correct_dead_time", "correct_qsa"]
    total = viewer.layers["sum 12C 14N · cells_01"]
    np.testing.assert_allclose(total.data, aligned.data[5:15].sum(axis=0))
    coverage = viewer.layers["coverage · cells_01"]
    assert coverage.data.max() == 10 and coverage.data.ndim == 2
    aligner.first_frame.value = 30
    assert aligner.run() is None and "frames to sum" in shown[-1]


def test_ratio_tab_adds_value_sigma_and_display_layers(make_napari_viewer, qtbot, demo_file):
    from napari_nanosims import evaluate
    from napari_nanosims._napari.widgets import RatioWidget
    from napari_nanosims._napari.widgets._common import LayerAdder

    viewer = make_napari_viewer()
    _open_demo(viewer, demo_file)
    widget = RatioWidget(viewer)
    titles = [title for title, _ in widget._preset_choices()]
    assert "12C15N/12C14N" in titles and "delta vs AIR 15N/14N" in titles
    widget._debounce.stop()
    widget.expression.value = "12C15N/12C14N"
    widget.kernel.value = 3
    widget.show_sigma.value = True
    widget._debounce.stop()

    def settle():
        qtbot.waitUntil(lambda: widget._runner.worker is None and not LayerAdder._active
                        and not widget._debounce.isActive(), timeout=30_000)

    widget.run()
    settle()
    expected = evaluate(open_acquisition(demo_file["path"]), "12C15N/12C14N", kernel=3)
    value = viewer.layers["ratio 12C 15N/12C 14N · cells_01"]
    np.testing.assert_allclose(value.data, expected.value, equal_nan=True)
    assert value.colorbar.visible and tuple(value.scale) == pytest.approx((20 / 256,) * 2)
    sigma = viewer.layers["sigma 12C 15N/12C 14N · cells_01"]
    np.testing.assert_allclose(sigma.data, expected.sigma, equal_nan=True)
    assert "median" in widget.result.value
    widget.display.value = "OpenMIMS HSI"
    widget._debounce.stop()
    widget.run()
    settle()
    rgb = viewer.layers["RGB 12C 15N/12C 14N · cells_01"]
    assert rgb.rgb and rgb.data.shape == (256, 256, 3) and rgb.data.dtype == np.uint8
    # the value layer under it shows the same colours in its colour bar
    assert value.visible and value.colorbar.visible
    assert value.colormap.name == "openmims-hsi"
    assert list(viewer.layers).index(rgb) > list(viewer.layers).index(value)
    widget.expression.value = "44Ca/12C"  # wrong: the user sees why, nothing breaks
    widget._debounce.stop()
    assert widget.run() is None  # not computed: the parser's message under the box
    assert "unknown mass label" in widget.expression_note.value


def test_rois_tab_find_cells_table_selection_profile_and_export(make_napari_viewer, qtbot,
                                                               demo_file, tmp_path):
    import json

    import pandas as pd

    from napari_nanosims import roi_table
    from napari_nanosims._napari.widgets import RoiWidget
    from napari_nanosims._napari.widgets._common import LayerAdder

    viewer = make_napari_viewer()
    _open_demo(viewer, demo_file)
    widget = RoiWidget(viewer)
    assert widget.channel.value == 2  # 12C 14N

    def settle():
        qtbot.waitUntil(lambda: widget._runner.worker is None and not LayerAdder._active,
                        timeout=30_000)

    widget.find_cells()
    settle()
    qtbot.waitUntil(lambda: widget.statistics is not None, timeout=30_000)
    settle()
    rois = viewer.layers["ROIs · cells_01"]
    assert rois.data.max() > 10 and tuple(rois.scale) == pytest.approx((20 / 256,) * 2)
    expected = roi_table(open_acquisition(demo_file["path"]), rois.data, ["12C15N/12C14N"])
    assert widget.table.rowCount() == rois.data.max()
    ratio = expected[expected.quantity == "12C 15N/12C 14N"].set_index("roi")
    from napari_nanosims._napari.widgets._roi_table import P_ROLE, VALUE_ROLE

    for row in range(widget.table.rowCount()):
        roi = int(widget.table.item(row, 0).data(VALUE_ROLE))
        cell = widget.table.item(row, 2)  # ROI | px | 12C 15N/12C 14N
        assert cell.data(VALUE_ROLE) == pytest.approx(ratio.loc[roi, "value"])
        assert cell.data(P_ROLE) == pytest.approx(ratio.loc[roi, "p_value"], nan_ok=True)
    numbers = viewer.layers["ROI numbers · ROIs · cells_01"]
    assert len(numbers.data) == rois.data.max()
    widget.table.selectRow(0)
    chosen = int(widget.table.item(0, 0).data(VALUE_ROLE))
    assert rois.selected_label == chosen
    assert len(widget._figure_canvas.figure.axes[0].lines) > 0
    written = widget.export_table(tmp_path / "table.csv")
    table = pd.read_csv(written[0])
    assert table.file.iloc[0] == demo_file["path"] and len(table) == len(widget.statistics)
    assert json.loads(written[1].read_text())["expressions"] == "12C15N/12C14N"
    assert widget.export_table(tmp_path / "table.csv") is None  # never replaced silently
    # painting changes the ROIs: the table follows (debounced)
    data = np.array(rois.data)
    data[:5, :5] = 99
    rois.data = data
    qtbot.waitUntil(lambda: widget.statistics is not None and 99 in set(widget.statistics.roi),
                    timeout=30_000)


def test_align_widget_region_flags_plot_and_click_to_frame(make_napari_viewer, qtbot,
                                                           demo_file):
    """A rectangle drawn on the image restricts the registration (as the recipe's region
    does); the drift plot marks flagged frames, clicking it moves the viewer to the frame."""
    from napari_nanosims._napari.widgets import AlignFramesWidget

    viewer = make_napari_viewer()
    data = _open_demo(viewer, demo_file)
    image = viewer.layers["12C 14N · cells_01"]
    aligner = AlignFramesWidget(viewer)
    # A rectangle over the pixels of rows 40-199, columns 30-219, drawn in world units.
    scale = np.asarray(image.scale[-2:])
    corners = np.array([[39.6, 29.6], [39.6, 219.4], [199.4, 219.4], [199.4, 29.6]]) * scale
    viewer.add_shapes([corners], shape_type="rectangle", name="keep")
    assert "keep" in aligner.region.choices
    aligner.method.value = "sub-pixel"
    aligner.region.value = "keep"
    aligner.detector.value = "sum"
    _run_and_wait(qtbot, aligner, "aligned sum", 7)
    expected = run_recipe(demo_file["path"], Recipe((
        ("align_frames", {"method": "subpixel", "channel": "sum",
                          "region": "40:200, 30:220"}),)))
    np.testing.assert_allclose(aligner.plot.translations, expected.translations, atol=1e-9)
    history = viewer.layers["aligned 12C 14N · cells_01"].metadata["nanosims"]["history"]
    assert history[-1]["step"] == "align_frames"
    assert history[-1]["parameters"]["region"].startswith("mask of")
    assert "flagged frames: none" in aligner.summary.value
    # The plot marks flagged frames and turns a click into a frame of the viewer.
    aligner.plot.set_translations(expected.translations,
                                  np.arange(data.shape[0]) == 3)
    assert aligner.plot.flagged.sum() == 1
    aligner.plot.resize(400, 120)
    frame = aligner.plot.frame_at(aligner.plot.width() - aligner.plot._MARGIN)
    assert frame == data.shape[0] - 1
    from qtpy.QtCore import QPoint, Qt

    qtbot.mouseClick(aligner.plot, Qt.MouseButton.LeftButton, pos=QPoint(
        aligner.plot._MARGIN, 60))
    assert viewer.dims.current_step[0] == 0
    aligner.go_to_frame(5)
    assert viewer.dims.current_step[0] == 5
