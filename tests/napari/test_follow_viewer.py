"""The tabs follow the viewer (issue 19 items 1 and 7, issue 20 item 9), driven as a user
would: the panel docked before or after the files are opened, layers removed, renamed,
steps cancelled or their sources deleted while they run."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

LABELS = ("12C", "13C", "12C 14N", "12C 15N", "SE")


def _items(combo) -> list[str]:
    """The texts a drop-down shows, in the order the user sees them."""
    native = combo.native
    return [native.itemText(i) for i in range(native.count()) if native.itemText(i) != "-----"]


def _settle(qtbot, *widgets):
    from napari_nanosims._napari.widgets._common import LayerAdder

    qtbot.waitUntil(lambda: all(w._runner.worker is None for w in widgets)
                    and not LayerAdder._active, timeout=60_000)


def _panel(viewer, qtbot):
    from napari_nanosims._napari.widgets.panel import NanoSIMSPanel

    panel = NanoSIMSPanel(viewer)
    qtbot.addWidget(panel)
    return panel


def _check_tabs_follow(panel, viewer):
    # ion masses in file order, then their sum, then SE
    assert _items(panel.align.detector) == ["12C", "13C", "12C 14N", "12C 15N",
                                            "sum of ion channels", "SE"]
    assert panel.align.detector.value == 2  # 'auto': 12C 14N
    # the Ratio tab sees every mass (its presets come from the file's layers)
    assert "13C/12C" in _items(panel.ratio.preset)
    assert "12C15N/12C14N" in _items(panel.ratio.preset)
    for tab in (panel.clean, panel.correct, panel.align, panel.ratio, panel.rois):
        assert tab.file.value is not None


@pytest.mark.parametrize("dock_first", [True, False], ids=["dock-first", "open-first"])
def test_every_tab_sees_every_layer_whichever_comes_first(make_napari_viewer, qtbot,
                                                          im_factory, dock_first):
    path = im_factory("cells.im", labels=LABELS, frames=3)
    viewer = make_napari_viewer()
    if dock_first:  # what `nanosims view FILE` and the Plugins menu do
        panel = _panel(viewer, qtbot)
        viewer.open(path, plugin="napari-nanosims")
    else:
        viewer.open(path, plugin="napari-nanosims")
        panel = _panel(viewer, qtbot)
    _check_tabs_follow(panel, viewer)
    # the hot-pixel count ran once the file's last layer was in
    qtbot.waitUntil(lambda: panel.clean.count_label.value != "-", timeout=30_000)


def test_tabs_follow_removed_and_renamed_layers(make_napari_viewer, qtbot, im_factory):
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory("cells.im", labels=LABELS, frames=3), plugin="napari-nanosims")
    viewer.layers.remove("13C · cells")
    assert _items(panel.align.detector) == ["12C", "12C 14N", "12C 15N",
                                            "sum of ion channels", "SE"]
    assert "13C/12C" not in _items(panel.ratio.preset)
    # a region drawn for the alignment, then renamed: the choice follows the name
    shapes = viewer.add_shapes([[[2, 2], [2, 10], [10, 10], [10, 2]]], name="cell",
                               scale=viewer.layers[0].scale[-2:])
    assert "cell" in _items(panel.align.region)
    shapes.name = "nucleus"
    assert "nucleus" in _items(panel.align.region) and "cell" not in _items(panel.align.region)
    # the other tabs still see the file's remaining layers, and say what is missing
    assert panel.clean.file.value is not None
    shown = []
    import napari.utils.notifications as notifications

    original = notifications.show_warning
    notifications.show_warning = shown.append
    try:
        assert panel.clean.run() is None
    finally:
        notifications.show_warning = original
    assert shown and "deleted" in shown[-1] and "Open a NanoSIMS" not in shown[-1]


def test_closing_a_file_leaves_the_other_chosen_everywhere(make_napari_viewer, qtbot,
                                                           im_factory):
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory("first.im", labels=LABELS, frames=2), plugin="napari-nanosims")
    viewer.open(im_factory("second.im", labels=("16O", "18O", "SE"), frames=2),
                plugin="napari-nanosims")
    assert _items(panel.clean.file) == ["first", "second"]
    for layer in [layer for layer in viewer.layers if layer.name.endswith("· second")]:
        viewer.layers.remove(layer)
    for tab in (panel.clean, panel.correct, panel.align, panel.ratio, panel.rois):
        assert _items(tab.file) == ["first"]
        assert tab.file.value is not None
    assert _items(panel.align.detector)[0] == "12C"


def test_a_shown_layer_is_selected_after_opening_and_after_each_step(make_napari_viewer,
                                                                     qtbot, im_factory):
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory("cells.im", labels=LABELS, frames=3), plugin="napari-nanosims")
    # napari selects the last layer added (SE, hidden); the shown one is selected instead
    qtbot.waitUntil(lambda: viewer.layers.selection.active is not None
                    and viewer.layers.selection.active.visible, timeout=5_000)
    assert viewer.layers.selection.active.name == "12C 14N · cells"
    for tab in (panel.clean, panel.align):
        assert tab.run() is not None
        _settle(qtbot, tab)
        active = viewer.layers.selection.active
        assert active is not None and active.visible, tab
    assert viewer.layers.selection.active.name == "aligned 12C 14N · cells"


class _Blocking:
    """A remove_hot_pixels step whose last step waits until the test lets it finish."""

    def __init__(self, step):
        self.step = step
        self.in_last_step = threading.Event()
        self.release = threading.Event()

    def iterate(self, acquisition, **parameters):
        from napari_nanosims.steps.progress import Progress

        yield Progress("remove_hot_pixels", 0, 1)
        result = yield from self.step.iterate(acquisition, **parameters)
        self.in_last_step.set()  # no yield after this: the runner checks Cancel no more
        self.release.wait(30)
        return result


def test_cancel_in_the_last_step_lets_nothing_through(make_napari_viewer, qtbot, im_factory,
                                                      monkeypatch):
    from napari_nanosims._napari.widgets import hot_pixels

    blocking = _Blocking(hot_pixels.REMOVE_HOT_PIXELS)
    monkeypatch.setattr(hot_pixels, "REMOVE_HOT_PIXELS", blocking)
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory("cells.im", labels=LABELS, frames=3), plugin="napari-nanosims")
    before = len(viewer.layers)
    panel.clean.run_button.native.click()
    assert blocking.in_last_step.wait(30)
    panel.clean.cancel_button.native.click()  # the worker is past its last check
    blocking.release.set()
    _settle(qtbot, panel.clean)  # the result arrives before the worker's end
    assert len(viewer.layers) == before
    assert not any("cleaned" in layer.name for layer in viewer.layers)
    # and the next run goes through
    blocking.release.set()
    panel.clean.run_button.native.click()
    _settle(qtbot, panel.clean)
    qtbot.waitUntil(lambda: sum("cleaned" in layer.name for layer in viewer.layers) == 4,
                    timeout=30_000)


def test_se_only_file_says_once_that_it_has_no_ion_masses(make_napari_viewer, qtbot,
                                                          im_factory, capfd):
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        viewer = make_napari_viewer()
        panel = _panel(viewer, qtbot)
        viewer.open(im_factory("se.im", labels=("SE",), frames=2), plugin="napari-nanosims")
        qtbot.waitUntil(lambda: any("no ion masses" in str(n.message) for n in seen),
                        timeout=5_000)
        _settle(qtbot, panel.clean, panel.correct, panel.align)
        about = [n for n in seen if "no ion masses" in str(n.message)]
        assert len(about) == 1
        assert not [n for n in seen if n.severity.name == "ERROR"]
        assert "no ion masses" in panel.clean.note.value
        assert "no ion masses" in panel.correct.info.value
        assert panel.correct.run() is None  # and it says why
        assert "no ion masses" in str(seen[-1].message)
        assert panel.clean.run() is None
        assert "no ion masses" in str(seen[-1].message)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("tab_name", ["clean", "align"])
def test_deleting_a_source_layer_while_a_step_runs(make_napari_viewer, qtbot, im_factory,
                                                   tab_name):
    viewer = make_napari_viewer()
    panel = _panel(viewer, qtbot)
    viewer.open(im_factory("cells.im", labels=LABELS, frames=3), plugin="napari-nanosims")
    tab = getattr(panel, tab_name)
    assert tab.run() is not None
    viewer.layers.remove("13C · cells")  # the worker is still running or its result queued
    _settle(qtbot, tab)
    names = [layer.name for layer in viewer.layers]
    kind = "cleaned" if tab_name == "clean" else "aligned"
    assert f"{kind} 12C · cells" in names
    assert not any(name.startswith(f"{kind} 13C") for name in names)
    assert not any(name.startswith("sum 13C") for name in names)
    # the other tabs still offer the file and its remaining channels
    assert panel.ratio.file.value is not None
    assert "13C" not in _items(panel.align.detector)
    assert "12C 14N" in _items(panel.align.detector)
