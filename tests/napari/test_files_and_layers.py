"""Several files, layer names, colormaps, markers and short stacks in the window (issue 19
items 5, 6, 8, 9, 10, 12 and 14), driven through the real tabs."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

LABELS = ("12C", "13C", "12C 14N", "SE")


def _settle(qtbot, *widgets):
    from napari_nanosims._napari.widgets._common import LayerAdder

    qtbot.waitUntil(lambda: all(w._runner.worker is None for w in widgets)
                    and not LayerAdder._active, timeout=60_000)


def _panel(viewer, qtbot):
    from napari_nanosims._napari.widgets.panel import NanoSIMSPanel

    panel = NanoSIMSPanel(viewer)
    qtbot.addWidget(panel)
    return panel


def _visible_files(viewer) -> set[str]:
    return {layer.metadata["nanosims"]["source_path"] for layer in viewer.layers
            if layer.visible and "nanosims" in layer.metadata}


def test_two_same_named_files_one_at_a_time_or_side_by_side(make_napari_viewer, qtbot,
                                                            im_factory):
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    first = im_factory("run A/cells.im", labels=LABELS, frames=2, shape=(20, 30))
    second = im_factory("run B/cells.im", labels=LABELS, frames=2, seed=1, shape=(20, 30))
    viewer.open(first, plugin="napari-nanosims")
    viewer.open(second, plugin="napari-nanosims")
    # told apart by their folders: in the names, the tabs and the metadata
    names = [layer.name for layer in viewer.layers]
    assert "12C 14N · cells (run A)" in names and "12C 14N · cells (run B)" in names
    assert not any(name.endswith("]") for name in names)  # no napari numbering
    assert [panel.clean.file.native.itemText(i) for i in range(1, 3)] == [
        "cells (run A)", "cells (run B)"]
    folders = {layer.metadata["nanosims"]["folder"] for layer in viewer.layers}
    assert {str(first).rsplit("/", 1)[0], str(second).rsplit("/", 1)[0]} == folders
    # one file at a time: the last opened is shown, and every tab works on it
    assert _visible_files(viewer) == {str(second)}
    second_id = viewer.layers["12C 14N · cells (run B)"].metadata["nanosims"]["acquisition_id"]
    assert panel.clean.file.value == panel.align.file.value == second_id
    assert not panel.clean.show_files.native.isHidden()  # offered once two files are open
    # choosing the other file in a tab shows it (with the visibility it had)
    panel.align.file.value = panel.align.file.choices[1]
    assert _visible_files(viewer) == {str(first)}
    assert viewer.layers["12C 14N · cells (run A)"].visible
    assert panel.ratio.file.value == panel.align.file.value
    # selecting a layer of the other file in the layer list shows that file
    viewer.layers.selection.active = viewer.layers["13C · cells (run B)"]
    assert _visible_files(viewer) == {str(second)}
    assert panel.clean.file.value == second_id
    # side by side: both visible, the second right of the first (width 30 px x pixel size)
    panel.clean.show_files.value = "side by side"
    assert panel.align.show_files.value == "side by side"
    assert _visible_files(viewer) == {str(first), str(second)}
    a, b = viewer.layers["12C 14N · cells (run A)"], viewer.layers["12C 14N · cells (run B)"]
    width = 30 * a.scale[-1]
    assert a.translate[-1] == 0 and b.translate[-1] >= width
    # results of a file land beside it too
    panel.clean.file.value = second_id
    panel.clean.run()
    _settle(qtbot, panel.clean)
    assert viewer.layers["cleaned 12C 14N · cells (run B)"].translate[-1] == b.translate[-1]
    panel.clean.show_files.value = "one file"
    assert all(layer.translate[-1] == 0 for layer in viewer.layers)
    assert _visible_files(viewer) == {str(second)}


def test_same_mass_same_colormap_in_every_file(make_napari_viewer, im_factory):
    viewer = make_napari_viewer()
    viewer.open(im_factory("one.im", labels=("12C", "12C 14N", "SE")), plugin="napari-nanosims")
    viewer.open(im_factory("two.im", labels=("12C 14N", "13C", "12C", "31P", "SE")),
                plugin="napari-nanosims")
    for label in ("12C", "12C 14N"):
        assert (viewer.layers[f"{label} · one"].colormap.name
                == viewer.layers[f"{label} · two"].colormap.name)
    ions = [viewer.layers[f"{label} · two"].colormap.name
            for label in ("12C 14N", "13C", "12C", "31P")]
    assert len(set(ions)) == 4  # the usual species of one file differ
    assert viewer.layers["SE · two"].colormap.name == "gray"


def _drifting_file(im_factory, name="drift.im"):
    """4 frames of a textured scene moved by known whole pixels, a hot pixel in frame 2."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    scene = gaussian_filter(rng.random((40, 40)), 2.5)
    scene = 5 + 60 * (scene - scene.min()) / np.ptp(scene)
    shifts = [(0, 0), (2, -1), (-1, 2), (1, 1)]
    counts = np.empty((4, 4, 40, 40), np.uint32)
    for frame, shift in enumerate(shifts):
        moved = np.roll(scene, shift, axis=(0, 1))
        for mass in range(4):
            counts[frame, mass] = rng.poisson(moved)
    counts[2, :3, 20, 22] = 5000  # hot in every ion channel, in one frame
    return im_factory(name, counts, labels=LABELS)


def test_hot_pixel_markers_move_with_the_aligned_frames(make_napari_viewer, qtbot,
                                                        im_factory):
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(_drifting_file(im_factory), plugin="napari-nanosims")
    panel.clean.show_points.value = True
    qtbot.waitUntil(lambda: "hot pixels · drift" in viewer.layers, timeout=30_000)
    markers = viewer.layers["hot pixels · drift"]
    assert np.argwhere(markers.data[2]).tolist() == [[20, 22]]
    image_units = tuple(viewer.layers["12C 14N · drift"].units)[-2:]
    assert [str(unit) for unit in image_units] == ["micrometer", "micrometer"]
    assert tuple(markers.units)[-2:] == image_units
    panel.align.run()
    _settle(qtbot, panel.align)
    aligned = viewer.layers["aligned 12C 14N · drift"].data
    hot = np.unravel_index(np.argmax(aligned[2]), aligned.shape[1:])
    assert hot != (20, 22)  # frame 2 moved: a marker left in place would be wrong

    def markers_on_the_aligned_frames():
        # The markers' layer is replaced after the aligned stacks arrive (its own event).
        return ("hot pixels · drift" in viewer.layers and np.argwhere(
            viewer.layers["hot pixels · drift"].data[2]).tolist() == [list(hot)])

    qtbot.waitUntil(markers_on_the_aligned_frames, timeout=30_000)
    # recounting (a parameter changed) puts the new markers on the aligned frames too
    panel.clean.min_count.value = 0.6
    qtbot.waitUntil(lambda: "hot pixels · drift" in viewer.layers
                    and viewer.layers["hot pixels · drift"] is not markers, timeout=30_000)
    assert np.argwhere(viewer.layers["hot pixels · drift"].data[2]).tolist() == [list(hot)]
    # every layer the tabs added is in µm, as the images are
    for layer in viewer.layers:
        assert tuple(layer.units)[-2:] == image_units, layer.name


def test_markers_drawn_while_aligned_stacks_arrive_wait_hidden_then_move(
        make_napari_viewer, qtbot, im_factory):
    # A recount can finish while the Align tab is still adding its stacks (some masses
    # aligned, some not): the alignment cannot be read from such a mix, so the markers
    # are added hidden and the Align tab moves and shows them when its last layer is in.
    from napari_nanosims._napari.lookups import acquisition_from_layers
    from napari_nanosims._napari.widgets.hot_pixels import _RAW_MASKS, move_overlays

    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(_drifting_file(im_factory), plugin="napari-nanosims")
    panel.clean.show_points.value = True
    qtbot.waitUntil(lambda: "hot pixels · drift" in viewer.layers, timeout=30_000)
    panel.align.run()
    _settle(qtbot, panel.align)
    markers = viewer.layers["hot pixels · drift"]
    acquisition_id = markers.metadata["nanosims_overlay"]
    raw_mask = _RAW_MASKS[id(markers)][1]
    translations = acquisition_from_layers(viewer, acquisition_id, ("aligned",)).translations
    aligned = viewer.layers["aligned 12C 14N · drift"].data
    hot = np.unravel_index(np.argmax(aligned[2]), aligned.shape[1:])

    viewer.layers.remove("aligned 13C · drift")  # one mass's aligned stack not in yet
    panel.clean._update_overlay(acquisition_id, raw_mask)
    waiting = viewer.layers["hot pixels · drift"]
    assert not waiting.visible  # never raw positions over aligned frames
    assert "markers hidden until the alignment is known" in panel.clean.count_label.value
    move_overlays(viewer, acquisition_id, translations)  # what the Align tab does at the end
    assert waiting.visible
    assert np.argwhere(waiting.data[2]).tolist() == [list(hot)]


def test_short_stacks_are_cleaned_by_default_and_said_so(make_napari_viewer, qtbot,
                                                         im_factory):
    rng = np.random.default_rng(0)
    counts = rng.poisson(4, size=(1, 4, 24, 24)).astype(np.uint32)
    counts[0, :3, 7, 9] = 900
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory("single.im", counts, labels=LABELS), plugin="napari-nanosims")
    clean = panel.clean
    assert clean.max_repeat_fraction.value == pytest.approx(0.1)  # the step's default shown
    assert "short stack: max_repeat_fraction 1.5 used" in clean.note.value
    qtbot.waitUntil(lambda: clean.count_label.value.startswith("1 in 1 frames"),
                    timeout=30_000)
    clean.run()
    _settle(qtbot, clean)
    cleaned = viewer.layers["cleaned 12C 14N · single"]
    assert cleaned.data[0, 7, 9] < 900
    used = cleaned.metadata["nanosims"]["history"][-1]["parameters"]
    assert used["max_repeat_fraction"] == pytest.approx(1.5)  # recorded as used


def test_parameters_are_remembered_per_kind_of_acquisition(make_napari_viewer, qtbot,
                                                           im_factory):
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory("short.im", labels=LABELS, frames=2), plugin="napari-nanosims")
    clean = panel.clean
    clean.outlier_factor.value = 2.5
    short_id = clean.file.value
    # another kind of file (more frames) starts from the defaults, not from 2.5
    viewer.open(im_factory("long.im", labels=LABELS, frames=12), plugin="napari-nanosims")
    assert clean.file.value != short_id
    assert clean.outlier_factor.value == pytest.approx(1.999)
    assert "remembered" not in clean.note.value
    # back to the short file: its kind's values, and the note says where they come from
    clean.file.value = short_id
    assert clean.outlier_factor.value == pytest.approx(2.5)
    assert "parameters remembered for 3 ion masses, 2-10 frames" in clean.note.value
    # a third file of the first kind gets them too, said in the note
    viewer.open(im_factory("short2.im", labels=LABELS, frames=2, seed=4),
                plugin="napari-nanosims")
    assert clean.outlier_factor.value == pytest.approx(2.5)
    assert "remembered" in clean.note.value


def test_one_frame_file_has_nothing_to_align(make_napari_viewer, qtbot, im_factory):
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory("single.im", labels=LABELS, frames=1), plugin="napari-nanosims")
    panel.align.run()
    _settle(qtbot, panel.align)
    qtbot.waitUntil(lambda: panel.align.summary.value != "-", timeout=10_000)
    assert panel.align.summary.value == "one frame: nothing to align"
    assert "flagged" not in panel.align.summary.value
    assert not panel.align.plot.flagged.any()  # no red line


def test_layer_names_keep_their_kind_when_elided(make_napari_viewer, qtbot, im_factory):
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QFontMetrics

    stem = "2023-05-12_sample_A_cells_01_long_acquisition"
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory(f"{stem}.im", labels=LABELS, frames=3), plugin="napari-nanosims")
    panel.clean.run()
    _settle(qtbot, panel.clean)
    panel.align.run()
    _settle(qtbot, panel.align)
    names = [layer.name for layer in viewer.layers]
    assert len(set(names)) == len(names)
    metrics = QFontMetrics(viewer.window._qt_viewer.layers.font())
    for kind in ("cleaned", "aligned", "sum"):
        name = f"{kind} 12C 14N · {stem}"
        assert name in names
        # napari's layer list cuts long names in the middle: the kind stays readable
        shown = metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, 180)
        assert shown.startswith(f"{kind} 12C") and shown.endswith("acquisition")
        layer = viewer.layers[name]
        assert layer.metadata["nanosims"]["source_path"].endswith(f"{stem}.im")
