"""Adding results without stalling the window (issue 24 part 4): the heap napari made is
frozen at the plugin's first widget yet a removed layer is still freed; the canvas and the
layer list draw again once the results are in; the new layers are in without napari
selecting each. The stall itself is measured by ``benchmarks/bench_gui.py``."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

LABELS = ("12C", "13C", "12C 14N", "SE")


@pytest.fixture
def unfrozen(monkeypatch):
    """The process as before any widget: nothing frozen (restored afterwards)."""
    from napari_nanosims._napari.widgets import _common

    if _common._refreeze is not None:  # an earlier test removed layers: not again now
        _common._refreeze.stop()
    gc.unfreeze()
    monkeypatch.setattr(_common, "_heap_frozen", False)
    yield
    gc.unfreeze()


def test_the_first_widget_freezes_the_heap_and_a_removed_layer_is_still_freed(
        make_napari_viewer, qtbot, im_factory, unfrozen):
    from napari_nanosims._napari.widgets import HotPixelWidget

    viewer = make_napari_viewer()
    viewer.open(im_factory("cells.im", labels=LABELS, frames=3), plugin="napari-nanosims")
    layer = weakref.ref(viewer.layers["13C · cells"])
    assert gc.get_freeze_count() == 0
    qtbot.addWidget(HotPixelWidget(viewer).native)
    assert gc.get_freeze_count() > 0  # napari's objects, the layers among them
    viewer.layers.remove("13C · cells")
    assert gc.get_freeze_count() == 0  # thawed: the layer can be collected
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=5_000)  # frozen again
    assert layer() is None  # ... after it was collected


def test_results_are_added_and_the_window_draws_again(make_napari_viewer, qtbot, im_factory,
                                                     monkeypatch):
    """... and between two additions the window's own timers (and input) run: each layer
    goes in without its vispy visual and controls, which are built in later turns, one
    each; the canvas's scene is updated once, and Python's collector waits until the end."""
    from itertools import pairwise

    from qtpy.QtCore import QTimer

    from napari_nanosims._napari.widgets import HotPixelWidget
    from napari_nanosims._napari.widgets._common import LayerAdder

    viewer = make_napari_viewer()
    viewer.open(im_factory("cells.im", labels=LABELS, frames=4), plugin="napari-nanosims")
    widget = HotPixelWidget(viewer)
    qtbot.addWidget(widget.native)
    qt_viewer = viewer.window._qt_viewer
    canvas, layer_list, scene = qt_viewer.canvas.native, qt_viewer.layers, qt_viewer.canvas
    controls = qt_viewer.controls
    del qt_viewer  # not held by the callbacks below (napari's leak check at the end)
    paused, ticks_at_insert, ticks, scene_updates, views_built = [], [], [], [], []
    ticker = QTimer()
    ticker.setInterval(1)
    ticker.timeout.connect(lambda: ticks.append(1))

    def watch(event):  # while the results go in, the canvas and the list do not draw
        if LayerAdder._active:
            layer = event.value
            paused.append((canvas.updatesEnabled(), layer_list.updatesEnabled(),
                           gc.isenabled(), layer in scene.layer_to_visual,
                           layer in controls.widgets))
            ticks_at_insert.append(len(ticks))

    setup_view = scene._setup_single_view  # runs only when napari updates the scene
    monkeypatch.setattr(scene, "_setup_single_view",
                        lambda: (scene_updates.append(len(ticks)), setup_view()))
    add_visual, add_controls = scene.add_layer_visual_mapping, controls._add
    monkeypatch.setattr(scene, "add_layer_visual_mapping", lambda layer, visual: (
        views_built.append(("visual", layer.name, len(ticks))), add_visual(layer, visual)))
    monkeypatch.setattr(controls, "_add", lambda event: (
        views_built.append(("controls", event.value.name, len(ticks))), add_controls(event)))

    viewer.layers.events.inserted.connect(watch)
    before = len(viewer.layers)
    widget.run()
    qtbot.waitUntil(lambda: widget._runner.worker is not None or LayerAdder._active,
                    timeout=60_000)
    ticker.start()
    qtbot.waitUntil(lambda: widget._runner.worker is None and not LayerAdder._active,
                    timeout=60_000)
    ticker.stop()
    viewer.layers.events.inserted.disconnect(watch)
    added = [layer for layer in viewer.layers if layer.name.startswith("cleaned ")]
    assert len(viewer.layers) == before + 3 and len(added) == 3  # one per ion mass
    assert paused and set(paused) == {(False, False, False, False, False)}
    assert canvas.updatesEnabled() and layer_list.updatesEnabled() and gc.isenabled()
    # every layer has its views, each built in a turn of its own after its insertion
    assert all(layer in scene.layer_to_visual and layer in controls.widgets
               for layer in viewer.layers)
    assert sorted((kind, name) for kind, name, _ in views_built) == sorted(
        (kind, layer.name) for layer in added for kind in ("visual", "controls"))
    turns = ticks_at_insert + [tick for *_, tick in views_built]
    assert len(set(turns)) == len(turns) == 9  # timers ran between any two
    assert all(later > earlier for earlier, later in pairwise(ticks_at_insert))
    assert len(scene_updates) == 1 and scene_updates[0] > max(turns)  # once, at the end
    active = viewer.layers.selection.active  # one visible result, selected at the end
    assert active is not None and active.visible and active.name.startswith("cleaned ")
    assert [layer.name for layer in viewer.layers.selection] == [active.name]
    assert controls.currentWidget() is controls.widgets[active]


def test_a_layer_selected_or_removed_before_its_views_are_built(make_napari_viewer, qtbot,
                                                              im_factory):
    """A click on a result that is in but not yet drawn shows its controls; a result
    removed meanwhile (Undo, the Delete key) goes without an error; a layer someone else
    adds meanwhile gets its views at once."""
    import numpy as np

    from napari_nanosims._napari.widgets import HotPixelWidget

    viewer = make_napari_viewer()
    viewer.open(im_factory("cells.im", labels=LABELS, frames=4), plugin="napari-nanosims")
    widget = HotPixelWidget(viewer)
    qtbot.addWidget(widget.native)
    qt_viewer = viewer.window._qt_viewer
    scene, controls = qt_viewer.canvas, qt_viewer.controls
    del qt_viewer
    checks = []

    def meddle(seen):  # a turn after the first and the second result went in
        first, second = seen[0], seen[1]
        checks.append(("pending", first in scene.layer_to_visual, second in controls.widgets))
        viewer.layers.selection.active = first  # the user clicks it
        checks.append(("selected", controls.currentWidget() is controls.widgets[first]))
        viewer.layers.remove(second)  # and deletes the other one
        other = viewer.add_image(np.ones((8, 8)), name="someone else's")
        checks.append(("other", other in scene.layer_to_visual, other in controls.widgets))

    seen = _run_meddling(viewer, widget, qtbot, 2, meddle)
    assert checks == [("pending", False, False), ("selected", True), ("other", True, True)]
    assert seen[1] not in viewer.layers and seen[1] not in scene.layer_to_visual
    assert all(layer in scene.layer_to_visual and layer in controls.widgets
               for layer in viewer.layers)
    assert len([layer for layer in viewer.layers if layer.name.startswith("cleaned ")]) == 2


def test_views_are_built_as_napari_does_without_its_private_callbacks():
    """Where napari has no window (or lacks the callbacks the adder defers), nothing is
    deferred."""
    from napari.components import ViewerModel

    from napari_nanosims._napari.widgets._scene import DeferredViews

    model = ViewerModel()
    views = DeferredViews(model)
    assert not views.defers
    with views.inserting():
        layer = model.add_image(np.zeros((4, 4)))
    assert layer in model.layers and not views.pending_layers()
    views.close()


@pytest.mark.parametrize("meddling", ["select the last result", "remove another layer"])
def test_a_click_after_the_last_result_went_in_still_ends_the_step(
        make_napari_viewer, qtbot, im_factory, monkeypatch, meddling):
    """A selection or a removal right after the last insertion builds the pending views
    itself; the step still ends as usual: its summary (``on_done``) and the selection of
    a visible result."""

    from napari_nanosims._napari.widgets import HotPixelWidget
    from napari_nanosims._napari.widgets._common import LayerAdder

    done = []
    init = LayerAdder.__init__

    def recording_init(self, viewer, tuples, on_done=None, **kwargs):
        def finished():
            done.append(1)
            if on_done is not None:
                on_done()
        init(self, viewer, tuples, on_done=finished, **kwargs)

    monkeypatch.setattr(LayerAdder, "__init__", recording_init)
    viewer = make_napari_viewer()
    viewer.open(im_factory("cells.im", labels=LABELS, frames=4), plugin="napari-nanosims")
    widget = HotPixelWidget(viewer)
    qtbot.addWidget(widget.native)

    def meddle(seen):
        if meddling == "select the last result":
            viewer.layers.selection.active = seen[-1]
        else:
            viewer.layers.remove("SE · cells")

    seen = _run_meddling(viewer, widget, qtbot, 3, meddle)  # 3: the last result
    assert len(seen) == 3 and done == [1]
    active = viewer.layers.selection.active
    assert active is not None and active.visible and active.name.startswith("cleaned ")
    assert "replaced" in widget.count_label.value  # the step's summary was written


def test_a_view_that_cannot_be_built_is_reported_and_the_others_are_built(
        make_napari_viewer, qtbot, im_factory, monkeypatch):
    from types import SimpleNamespace

    from napari_nanosims._napari.widgets import HotPixelWidget
    from napari_nanosims._napari.widgets._common import LayerAdder

    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    viewer = make_napari_viewer()
    viewer.open(im_factory("cells.im", labels=LABELS, frames=4), plugin="napari-nanosims")
    widget = HotPixelWidget(viewer)
    qtbot.addWidget(widget.native)
    controls = viewer.window._qt_viewer.controls
    add_controls = controls._add

    failed = []

    def failing(event):  # the first result's controls (not the layer selected at the end)
        if not failed and event.value.name.startswith("cleaned "):
            failed.append(event.value)
            raise ValueError("no controls for this one")
        add_controls(event)

    monkeypatch.setattr(controls, "_add", failing)
    widget.run()
    qtbot.waitUntil(lambda: widget._runner.worker is not None or LayerAdder._active,
                    timeout=60_000)
    qtbot.waitUntil(lambda: widget._runner.worker is None and not LayerAdder._active,
                    timeout=60_000)
    assert len(errors) == 1 and "no controls for this one" in errors[0]
    visuals = viewer.window._qt_viewer.canvas.layer_to_visual
    assert all(layer in visuals for layer in viewer.layers)  # every visual all the same
    assert all(layer in controls.widgets for layer in viewer.layers if layer is not failed[0])
    assert viewer.layers.selection.active is not failed[0] and gc.isenabled()
    add_controls(SimpleNamespace(value=failed[0]))  # napari removes them when it closes


def _run_meddling(viewer, widget, qtbot, after: int, meddle) -> list:
    """Run ``widget``'s step; ``meddle(results)`` runs in the turn after its ``after``-th
    result went in (its views still wait then). Returns the results inserted, in order."""
    from qtpy.QtCore import QTimer

    from napari_nanosims._napari.widgets._common import LayerAdder

    seen = []

    def watch(event):
        if LayerAdder._active and event.value.name.startswith("cleaned "):
            seen.append(event.value)
            if len(seen) == after:
                QTimer.singleShot(0, lambda: meddle(seen))

    viewer.layers.events.inserted.connect(watch)
    widget.run()
    qtbot.waitUntil(lambda: widget._runner.worker is not None or LayerAdder._active,
                    timeout=60_000)
    qtbot.waitUntil(lambda: widget._runner.worker is None and not LayerAdder._active,
                    timeout=60_000)
    viewer.layers.events.inserted.disconnect(watch)
    return seen
