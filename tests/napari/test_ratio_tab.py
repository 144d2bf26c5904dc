"""The Ratio tab driven as a user would (issue 19, items 2, 3, 5, 11, 18): type key by key,
pause, change the expression, choose the mass the count threshold applies to, save a
figure. Runs under Xvfb (pytest --xvfb-backend=xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nanosims import load_mims

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")


@pytest.fixture
def notifications():
    """Every napari notification shown during the test (errors and warnings)."""
    from napari.utils.notifications import notification_manager

    shown = []
    notification_manager.notification_ready.connect(shown.append)
    yield shown
    notification_manager.notification_ready.disconnect(shown.append)


@pytest.fixture
def tab(make_napari_viewer, demo_file):
    from napari_nanosims._napari.widgets import RatioWidget

    viewer = make_napari_viewer()
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    widget = RatioWidget(viewer)
    widget._debounce.stop()  # the first preset is a suggestion: nothing runs on its own
    return viewer, widget


def _kind(viewer, kind):
    return [layer for layer in viewer.layers
            if layer.metadata.get("nanosims", {}).get("kind") == kind]


def _settled(widget):
    from napari_nanosims._napari.widgets._common import LayerAdder

    return (widget._runner.worker is None and not LayerAdder._active
            and not widget._debounce.isActive())


def _type(qtbot, widget, text, *, clear=True):
    """Type ``text`` key by key into the expression box (as a user does)."""
    box = widget.expression.native
    if clear:
        box.clear()
    qtbot.keyClicks(box, text)


def _raw_sums(demo_file):
    """Raw counts summed over the frames, per mass label (read independently)."""
    mims = load_mims(demo_file["path"])
    data = np.asarray(mims.data, dtype=np.float64)  # (frames, masses, y, x)
    return {label: data[:, i].sum(axis=0) for i, label in enumerate(mims.header.labels)}


def test_typing_key_by_key_computes_only_what_parses_and_never_notifies(
        tab, qtbot, notifications):
    viewer, widget = tab
    # pauses at incomplete expressions: the parser's message under the box, nothing else
    for partial in ("13C/", "13C/(12C", "delta(13C/12C,", "13C/44Ca"):
        _type(qtbot, widget, partial)
        qtbot.waitUntil(lambda: not widget._debounce.isActive(), timeout=5_000)
        assert widget.expression_note.value, partial  # the parser says what is wrong
        assert widget._runner.worker is None and not _kind(viewer, "ratio")
    assert "unknown mass label" in widget.expression_note.value  # the last one
    # a number alone parses but uses no mass: not computed either
    _type(qtbot, widget, "1")
    assert "no mass" in widget.expression_note.value
    qtbot.waitUntil(lambda: _settled(widget), timeout=5_000)
    assert not _kind(viewer, "ratio")
    # the whole expression, key by key: computed once, named after the whole expression
    _type(qtbot, widget, "13C/12C")
    assert widget.expression_note.value == ""
    qtbot.waitUntil(lambda: bool(_kind(viewer, "ratio")) and _settled(widget), timeout=30_000)
    (value,) = _kind(viewer, "ratio")
    assert value.metadata["nanosims"]["label"] == "13C/12C"
    assert "13C/12C" in value.name
    assert not [n for n in notifications if "failed" in str(n.message)
                or n.severity.name == "ERROR"]


def test_layers_are_renamed_with_the_expression_they_hold(tab, qtbot, demo_file, tmp_path):
    from napari_nanosims._napari.layers import layer_name
    from napari_nanosims._napari.widgets.ratio import _text_overlay
    from napari_nanosims._napari.writers import _acquisition_from_layers

    viewer, widget = tab
    widget.show_sigma.value = True
    widget.display.value = "OpenMIMS HSI"
    _type(qtbot, widget, "12C15N/12C14N")
    qtbot.waitUntil(lambda: len(_kind(viewer, "ratio display")) == 1 and _settled(widget),
                    timeout=30_000)
    (value,) = _kind(viewer, "ratio")
    assert "12C 15N/12C 14N" in value.name
    # a pause at a partial expression that parses (13C/1) computes it; finishing the
    # expression renames every layer: no layer keeps the partial or the first name
    _type(qtbot, widget, "13C/1")
    qtbot.waitUntil(lambda: value.metadata["nanosims"]["label"] == "13C/1" and
                    _settled(widget), timeout=30_000)
    qtbot.keyClicks(widget.expression.native, "2C")
    qtbot.waitUntil(lambda: value.metadata["nanosims"]["label"] == "13C/12C" and
                    _settled(widget), timeout=30_000)
    sums = _raw_sums(demo_file)
    ratio_layers = _kind(viewer, "ratio") + _kind(viewer, "ratio sigma") + \
        _kind(viewer, "ratio display")
    assert len(ratio_layers) == 3
    for layer in ratio_layers:
        info = layer.metadata["nanosims"]
        assert info["label"] == "13C/12C"
        assert layer.name == layer_name("13C/12C", "cells_01", info["kind"])
        assert "12C 15N" not in layer.name and "13C/1 " not in layer.name + " "
    # the data is that expression's: 13C/12C of the raw sums where both have >= 10 counts
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = sums["13C"] / sums["12C"]
    expected[(sums["13C"] < 10) | (sums["12C"] < 10)] = np.nan
    np.testing.assert_allclose(value.data, expected, rtol=1e-9, equal_nan=True)
    assert _text_overlay(viewer).text == "13C/12C (ratio)"  # the colour bar's title
    # saving the layer writes the expression it holds as the channel name
    acquisition, _ = _acquisition_from_layers([value.as_layer_data_tuple()])
    assert acquisition.channels[0].label == "13C/12C"
    # a colormap display: the RGB layer of the old settings goes, it would hide the value
    widget.display.value = "colormap"
    qtbot.waitUntil(lambda: not _kind(viewer, "ratio display") and _settled(widget),
                    timeout=30_000)


def test_ratio_layers_carry_the_images_scale_and_units(tab, qtbot, notifications):
    viewer, widget = tab
    widget.show_sigma.value = True
    _type(qtbot, widget, "13C/12C")
    qtbot.waitUntil(lambda: bool(_kind(viewer, "ratio sigma")) and _settled(widget), timeout=30_000)
    image = viewer.layers[0]
    for layer in _kind(viewer, "ratio") + _kind(viewer, "ratio sigma"):
        assert tuple(layer.scale) == pytest.approx(tuple(image.scale)[-2:])
        assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    assert str(viewer.layers.extent.units[-1]) == "micrometer"  # napari: units agree
    canvas = viewer.window._qt_viewer.canvas
    if hasattr(canvas, "_update_world_units"):
        canvas._update_world_units()  # what napari runs at the next draw
    assert not [n for n in notifications if "Inconsistent units" in str(n.message)]


def test_masked_by_the_counts_of_a_chosen_mass_and_median_over_kept_pixels(
        tab, qtbot, demo_file):
    viewer, widget = tab
    # the default masks pixels under 10 raw counts of every mass used, as the CLI does
    assert widget.min_counts.value == 10
    assert widget.mask_on.value == "all"
    assert "12C 14N" in widget.mask_on.choices and "SE" not in widget.mask_on.choices
    widget.min_counts.value = 40
    widget.mask_on.value = "12C 14N"  # LANS: mask on the cells' 12C14N counts
    _type(qtbot, widget, "12C15N/12C14N")
    qtbot.waitUntil(lambda: bool(_kind(viewer, "ratio")) and _settled(widget), timeout=30_000)
    sums = _raw_sums(demo_file)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = sums["12C 15N"] / sums["12C 14N"]
    expected[sums["12C 14N"] < 40] = np.nan
    (value,) = _kind(viewer, "ratio")
    np.testing.assert_allclose(value.data, expected, rtol=1e-9, equal_nan=True)
    kept = expected[np.isfinite(expected)]
    assert 0 < kept.size < expected.size
    text = widget.result.value
    assert f"median {np.median(kept):.4g}" in text and f"over {kept.size} px" in text
    masked = 100 * (1 - kept.size / expected.size)
    assert f"{masked:.0f} % masked" in text and "12C 14N" in text
    assert value.metadata["nanosims"]["history"][-1]["parameters"]["min_counts_of"] == \
        "12C 14N"


def test_save_figure_from_the_tab(tab, qtbot, tmp_path):
    from imageio.v3 import imread

    viewer, widget = tab
    widget.display.value = "OpenMIMS HSI"
    _type(qtbot, widget, "12C15N/12C14N")
    qtbot.waitUntil(lambda: bool(_kind(viewer, "ratio display")) and _settled(widget),
                    timeout=30_000)
    described = widget.save_figure(tmp_path / "figure.png")
    assert described["display"] == "hsi" and described["label"] == "12C 15N/12C 14N (ratio)"
    assert described["range"] == pytest.approx((widget.low.value, widget.high.value))
    picture = imread(tmp_path / "figure.png")
    assert picture.shape[0] > 256 and picture.shape[1] > 256 + 60  # image and colour bar
    assert widget.save_figure(tmp_path / "figure.png") is None  # never replaced silently
    assert "saved figure.png" in widget.result.value


def test_the_preset_shows_what_the_expression_is(tab, qtbot):
    """A preset left showing after the user typed another expression would mislabel the
    tab: it follows the text (spaces ignored), blank when the text is no preset."""
    viewer, widget = tab
    presets = [value for value in widget.preset.choices if value is not None]
    assert len(presets) >= 2
    widget.preset.value = presets[0]
    assert widget.expression.value == presets[0]
    _type(qtbot, widget, "13C/12C+1")
    assert widget.preset.value is None
    _type(qtbot, widget, " ".join(presets[1]))  # the same text with spaces in it
    assert widget.preset.value == presets[1]
