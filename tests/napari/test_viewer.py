"""The plugin in a real napari viewer: reader choice, sample data, widgets in thread workers,
the header panel and a screenshot. Runs under Xvfb (pytest --xvfb-backend=xvfb)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_nanosims import (apply_translations, infer_translations, load_mims,
                             remove_hot_pixels)
from conftest import needs_shared, real_file

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


def _wait_for(qtbot, runner, timeout=60_000):
    qtbot.waitUntil(lambda: runner.worker is None, timeout=timeout)


def test_open_with_plugin_name_and_reader_choice(make_napari_viewer, demo_file,
                                                 no_reader_preference):
    from napari.errors import MultipleReaderError

    viewer = make_napari_viewer()
    # Two plugins claim *.im; with no preference napari asks (the dialog in the GUI).
    with pytest.raises(MultipleReaderError):
        viewer.open(demo_file["path"], plugin=None)
    layers = viewer.open(demo_file["path"], plugin="napari-nanosims")
    assert len(layers) == 7
    # The first successful read remembered the choice: later opens need no plugin name.
    assert no_reader_preference.extension2reader["*.im"] == "napari-nanosims"
    again = viewer.open(demo_file["path"], plugin=None)
    assert [layer.name for layer in again] == [f"{layer.name} [1]" for layer in layers]
    layer = viewer.layers["cells_01 12C 14N"]
    assert tuple(layer.scale) == pytest.approx((1.0, 20 / 256, 20 / 256))
    assert [str(u) for u in layer.units][1:] == ["micrometer", "micrometer"]
    assert tuple(layer.axis_labels) == ("frame", "y", "x")


def test_existing_preference_is_kept(make_napari_viewer, demo_file, no_reader_preference):
    no_reader_preference.extension2reader = {"*.im": "napari"}
    viewer = make_napari_viewer()
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    assert no_reader_preference.extension2reader["*.im"] == "napari"


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-nanosims", "nanosims_demo")
    assert [layer.name for layer in viewer.layers][:3] == [
        "nanosims_demo_seed0 12C", "nanosims_demo_seed0 13C", "nanosims_demo_seed0 12C 14N"]
    assert len(viewer.layers) == 7
    assert viewer.layers[0].metadata["nanosims"]["source_path"].endswith(".im")


def _open_demo(viewer, demo_file):
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    return np.asarray(load_mims(demo_file["path"]).data)


def test_hot_pixel_widget_end_to_end(make_napari_viewer, qtbot, demo_file):
    from napari_nanosims._napari.widgets import HotPixelWidget

    viewer = make_napari_viewer()
    widget = HotPixelWidget(viewer)
    assert widget.file.value is None
    data = _open_demo(viewer, demo_file)
    assert widget.file.value == demo_file["path"]
    # Live count of flagged pixels with the current parameters.
    widget.show_points.value = True
    qtbot.waitUntil(lambda: widget._preview is None and widget.count_label.value != "-",
                    timeout=30_000)
    expected = remove_hot_pixels(data[:, :6])
    flagged = int((expected != data[:, :6]).any(axis=1).sum())
    assert widget.count_label.value.startswith(str(int(
        __import__("napari_nanosims").infer_hot_pixels(data[:, :6], 3, 3, 1.999, 0.5).sum())))
    assert "cells_01 hot pixels" in viewer.layers
    # Run in a worker: buttons disabled while it runs, cleaned layers appear after.
    worker = widget.run()
    assert worker is not None and not widget.run_button.enabled
    _wait_for(qtbot, widget._runner)
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    for index, label in enumerate(demo_file["labels"][:6]):
        cleaned = viewer.layers[f"cells_01 {label} (cleaned)"]
        np.testing.assert_array_equal(cleaned.data, expected[:, index])
        original = viewer.layers[f"cells_01 {label}"]
        assert tuple(cleaned.scale) == tuple(original.scale)
        history = cleaned.metadata["nanosims"]["history"]
        assert history[-1]["step"] == "remove_hot_pixels"
        assert history[-1]["params"]["outlier_factor"] == 1.999
        assert history[-1]["hot_pixels_total"] >= flagged > 0
        np.testing.assert_array_equal(original.data, data[:, index])  # untouched
    assert "cells_01 SE (cleaned)" not in viewer.layers
    # Running again replaces our layers instead of piling up copies.
    widget.run()
    _wait_for(qtbot, widget._runner)
    assert sum(name.endswith("(cleaned)") for name in
               [layer.name for layer in viewer.layers]) == 6


def test_hot_pixel_widget_cancel_and_errors(make_napari_viewer, qtbot, demo_file,
                                            monkeypatch):
    from napari_nanosims._napari.widgets import HotPixelWidget

    warnings_shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", warnings_shown.append)
    viewer = make_napari_viewer()
    widget = HotPixelWidget(viewer)
    assert widget.run() is None and "Open a NanoSIMS" in warnings_shown[-1]
    _open_demo(viewer, demo_file)
    widget.num_outliers.value = 7
    assert widget.run() is None and "larger than the number" in warnings_shown[-1]
    widget.num_outliers.value = 3
    worker = widget.run()
    widget.cancel_button.changed.emit(True)  # what clicking Cancel does
    _wait_for(qtbot, widget._runner)
    assert worker.abort_requested
    assert not [layer for layer in viewer.layers if layer.name.endswith("(cleaned)")]


def test_parameters_are_remembered(make_napari_viewer, qtbot):
    from napari_nanosims._napari.widgets import HotPixelWidget

    viewer = make_napari_viewer()
    first = HotPixelWidget(viewer)
    first.outlier_factor.value = 2.5
    first.num_outliers.value = 4
    second = HotPixelWidget(viewer)
    assert second.outlier_factor.value == 2.5 and second.num_outliers.value == 4


def test_align_widget_default_detector_follows_layers_until_chosen(make_napari_viewer,
                                                                 demo_file):
    from napari_nanosims._napari.widgets import AlignFramesWidget

    viewer = make_napari_viewer()
    widget = AlignFramesWidget(viewer)  # docked before any file is open
    _open_demo(viewer, demo_file)
    assert widget.detector.value == 2  # 12C 14N, not the first layer that arrived
    widget.detector.value = 0  # the user's choice survives new layers
    viewer.add_image(np.zeros((3, 3)), name="other")
    assert widget.detector.value == 0


def test_align_widget_end_to_end(make_napari_viewer, qtbot, demo_file):
    from napari_nanosims._napari.widgets import AlignFramesWidget, HotPixelWidget

    viewer = make_napari_viewer()
    data = _open_demo(viewer, demo_file)
    widget = AlignFramesWidget(viewer)
    assert widget.file.value == demo_file["path"]
    assert widget.detector.value == 2  # 12C 14N
    widget.use_cleaned.value = False
    widget.run()
    _wait_for(qtbot, widget._runner)
    translations = infer_translations(data[:, 2])
    expected = apply_translations(data, translations)[:, :, 8:-8, 8:-8]
    for index, label in enumerate(demo_file["labels"]):
        aligned = viewer.layers[f"cells_01 {label} (aligned)"]
        np.testing.assert_array_equal(aligned.data, expected[:, index])
        total = viewer.layers[f"cells_01 {label} (aligned sum)"]
        np.testing.assert_array_equal(total.data, expected[:, index].sum(axis=0))
        assert tuple(total.scale) == pytest.approx((20 / 256, 20 / 256))
    np.testing.assert_array_equal(widget.plot.translations, translations)
    assert "range y" in widget.summary.value

    # With cleaned layers present, sub-pixel alignment uses them.
    cleaner = HotPixelWidget(viewer)
    cleaner.run()
    _wait_for(qtbot, cleaner._runner)
    widget.use_cleaned.value = True
    widget.method.value = "sub-pixel"
    widget.run()
    _wait_for(qtbot, widget._runner)
    aligned = viewer.layers["cells_01 12C 14N (aligned)"]
    assert aligned.data.dtype == np.float32
    entry = aligned.metadata["nanosims"]["history"][-1]
    assert entry["params"]["method"] == "subpixel" and entry["params"]["used_cleaned"]
    assert [h["step"] for h in aligned.metadata["nanosims"]["history"]] == [
        "remove_hot_pixels", "align_frames"]
    cleaned = remove_hot_pixels(data[:, :6])
    reference = infer_translations(cleaned[:, 2], method="subpixel")
    np.testing.assert_allclose(entry["translations_px"], reference)


def test_header_panel_follows_the_active_layer(make_napari_viewer, qtbot, demo_file):
    from napari_nanosims._napari.widgets import HeaderPanel

    viewer = make_napari_viewer()
    panel = HeaderPanel(viewer)
    qtbot.addWidget(panel)
    assert panel.pages.currentIndex() == 0  # placeholder
    _open_demo(viewer, demo_file)
    viewer.layers.selection.active = viewer.layers["cells_01 12C 14N"]
    assert panel.pages.currentIndex() == 1
    assert panel.header["sample_name"] == "demo cells"
    assert "dwell_time_us" in panel.visible_fields()
    panel.search.setText("raster")
    assert panel.visible_fields() == ["raster_um"]
    panel.search.setText("")
    text = panel.copy_json()
    assert '"labels"' in text and "12C 14N" in text
    from qtpy.QtWidgets import QApplication

    assert QApplication.clipboard().text() == text
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
    viewer.close()
    # No exception may reach the Qt event loop (pytest-qt fails the test if one does).
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)


def test_screenshot_with_the_demo_and_the_widgets(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-nanosims", "nanosims_demo")
    for name in ("Remove hot pixels", "Align frames", "NanoSIMS header"):
        viewer.window.add_plugin_dock_widget("napari-nanosims", name)
    qtbot.wait(200)
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert canvas.ndim == 3 and canvas[..., :3].std() > 5, "the canvas is blank"
    window = viewer.screenshot(canvas_only=False, flash=False)
    # Set NANOSIMS_SCREENSHOT_DIR to keep the picture somewhere to look at it.
    folder = Path(os.environ.get("NANOSIMS_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    from imageio.v3 import imwrite

    imwrite(folder / "viewer_demo.png", window)
    assert (folder / "viewer_demo.png").stat().st_size > 10_000
    print(f"screenshot saved to {folder / 'viewer_demo.png'}")


@needs_shared
def test_real_file_in_the_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open(str(real_file("OpenMIMS_doc_051117_05-32dRe-03b.im")), plugin="napari-nanosims")
    assert len(viewer.layers) == 4
    assert viewer.layers[0].data.shape == (1, 256, 256)


def test_cli_view_builds_the_viewer(make_napari_viewer, demo_file):
    from napari_nanosims.cli import open_viewer

    viewer = open_viewer([demo_file["path"]], viewer=make_napari_viewer())
    assert len(viewer.layers) == 7
    docked = set(viewer.window.dock_widgets)
    assert {"Remove hot pixels (napari-nanosims)", "Align frames (napari-nanosims)",
            "NanoSIMS header (napari-nanosims)"} <= docked


@needs_shared
def test_widgets_on_a_real_file(make_napari_viewer, qtbot):
    from napari_nanosims._napari.widgets import AlignFramesWidget, HotPixelWidget

    path = str(real_file("OpenMIMS_doc_051117_05-32dRe-03b.im"))
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-nanosims")
    data = np.asarray(load_mims(path).data)
    cleaner = HotPixelWidget(viewer)
    assert cleaner.file.value == path
    cleaner.run()
    _wait_for(qtbot, cleaner._runner)
    stem = "OpenMIMS_doc_051117_05-32dRe-03b"
    # One frame: the seed's rule can flag nothing (the user is warned), so nothing changes.
    for index, label in enumerate(("12C", "13C", "12C 14N", "12C 15N")):
        np.testing.assert_array_equal(viewer.layers[f"{stem} {label} (cleaned)"].data,
                                      data[:, index])
    aligner = AlignFramesWidget(viewer)
    assert aligner.detector.value == 2
    aligner.run()
    _wait_for(qtbot, aligner._runner)
    total = viewer.layers[f"{stem} 12C 14N (aligned sum)"]
    np.testing.assert_array_equal(total.data, data[0, 2])
    assert tuple(total.scale) == pytest.approx((0.07809088427947598,) * 2)
