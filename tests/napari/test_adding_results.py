"""Adding results without stalling the window (issue 24 part 4): the heap napari made is
frozen at the plugin's first widget yet a removed layer is still freed; the canvas and the
layer list draw again once the results are in; the new layers are in without napari
selecting each. The stall itself is measured by ``benchmarks/bench_gui.py``."""

from __future__ import annotations

import gc
import weakref

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


def test_results_are_added_and_the_window_draws_again(make_napari_viewer, qtbot, im_factory):
    """... and between two additions the window's own timers (and input) run: the
    canvas's scene waits for the last one (one update, not one per layer)."""
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
    del qt_viewer  # not held by the callbacks below (napari's leak check at the end)
    paused, ticks_at_insert, batches_ended, ticks = [], [], [], []
    ticker = QTimer()
    ticker.setInterval(1)
    ticker.timeout.connect(lambda: ticks.append(1))

    def watch(*_):  # while the results go in, the canvas and the list do not draw
        if LayerAdder._active:
            paused.append((canvas.updatesEnabled(), layer_list.updatesEnabled(),
                           scene._pause_scene_graph))
            ticks_at_insert.append(len(ticks))

    def batch_ended(*_):
        batches_ended.append(1)

    viewer.layers.events.inserted.connect(watch)
    viewer.layers.events.end_batch.connect(batch_ended)
    before = len(viewer.layers)
    widget.run()
    qtbot.waitUntil(lambda: widget._runner.worker is not None or LayerAdder._active,
                    timeout=60_000)
    ticker.start()
    qtbot.waitUntil(lambda: widget._runner.worker is None and not LayerAdder._active,
                    timeout=60_000)
    ticker.stop()
    assert len(viewer.layers) == before + 3  # a cleaned stack per ion mass
    assert paused and set(paused) == {(False, False, True)}
    assert canvas.updatesEnabled() and layer_list.updatesEnabled()
    assert not scene._pause_scene_graph and len(batches_ended) == 1
    assert all(later > earlier for earlier, later in pairwise(ticks_at_insert))
    viewer.layers.events.inserted.disconnect(watch)
    viewer.layers.events.end_batch.disconnect(batch_ended)
    active = viewer.layers.selection.active  # one visible result, selected at the end
    assert active is not None and active.visible and active.name.startswith("cleaned ")
    assert [layer.name for layer in viewer.layers.selection] == [active.name]
