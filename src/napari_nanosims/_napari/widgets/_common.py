"""Helpers shared by the dock widgets: adding result layers without blocking the event
loop. The Qt-free layer lookups are in :mod:`napari_nanosims._napari.lookups` (re-exported
here for the tabs); the worker runner is in :mod:`._runner`."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..lookups import (  # re-exported: the tabs import the lookups from here
    KIND_ALIGNED,
    KIND_CLEANED,
    KIND_CORRECTED,
    KIND_COVERAGE,
    KIND_DISPLAY,
    KIND_RATIO,
    KIND_SIGMA,
    KIND_SUM,
    NOT_A_CHANNEL,
    RESULTS,
    ResultRegistry,
    acquisition_choices,
    acquisition_from_layers,
    channel_layers,
    coverage_layer_data,
    layer_state,
    nanosims_info,
    results_for_layers,
    source_layers,
)
from ._runner import _notify_error
from ._scene import (
    DeferredViews,
    _batch_scene_updates,
    _pause_drawing,
    _unproxied,
    hold_collection,
    release_collection,
)

if TYPE_CHECKING:  # for annotations; the code imports it where it is used
    from ._undo import UndoStep

__all__ = [
    "KIND_CLEANED", "KIND_CORRECTED", "KIND_ALIGNED", "KIND_SUM", "KIND_COVERAGE",
    "KIND_RATIO", "KIND_SIGMA", "KIND_DISPLAY", "NOT_A_CHANNEL", "nanosims_info",
    "acquisition_choices", "channel_layers", "source_layers", "acquisition_from_layers",
    "ResultRegistry", "RESULTS", "layer_state", "results_for_layers", "coverage_layer_data",
    "LayerAdder", "reset_in_order", "refresh_choices", "freeze_startup_heap",
]

_heap_frozen = False  # freeze_startup_heap() ran in this process
_refreeze = None  # the pending QTimer of _freeze_again()

#: Seconds after the last layer removal before the heap is collected and frozen again:
#: the removed layers' Qt controls are deleted on a later event-loop turn, only then can
#: the layers be collected.
REFREEZE_DELAY_S = 1.0


def freeze_startup_heap(viewer=None) -> None:
    """Move the objects napari made so far (its window, viewer, plugins) out of Python's
    garbage collection, once per process, at the plugin's first widget.

    They live as long as the window; left in the collector, each full collection walks
    them all, 300-500 ms in a plain napari session, and one falls due while results are
    added (the layers' objects are many), blocking the window. ``nanosims view`` freezes
    after opening its files as well. What is garbage already is collected first, so that
    nothing dead is kept: that one collection happens here, while the widget is built,
    not after a Run. Frozen objects are never collected, so when ``viewer`` removes a
    layer the heap is thawed, and collected and frozen again
    :data:`REFREEZE_DELAY_S` later (napari collects on removal too).
    """
    global _heap_frozen
    if viewer is not None:
        layers = _unproxied(viewer).layers
        layers.events.removing.connect(_thaw)  # connecting twice is ignored
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()


def _thaw(_event=None) -> None:
    """A layer is being removed: frozen, it could never be freed."""
    global _refreeze
    gc.unfreeze()
    if _refreeze is None:
        from qtpy.QtCore import QTimer

        _refreeze = QTimer()
        _refreeze.setSingleShot(True)
        _refreeze.timeout.connect(_freeze_again)
    _refreeze.start(int(REFREEZE_DELAY_S * 1000))  # again from the last removal


def _freeze_again() -> None:
    gc.collect()
    gc.freeze()


class LayerAdder:
    """Adds layer data tuples to a viewer one per event-loop turn.

    One ``add_image`` on the demo costs napari 60-200 ms (its vispy layer and the
    layer's controls; more on a slow machine): adding 14 at once would freeze the window
    for seconds. A layer goes in without its vispy visual and controls, and each of those
    is built in a later turn (:class:`._scene.DeferredViews`). Drawing and the canvas's
    scene updates wait until the last. A result
    replaces the data of our layer of the same acquisition id, channel and kind; the
    source of a new visible layer is hidden so that the picture stays the same kind of
    picture. What is left is dropped quietly when ``alive()`` turns False (the widget
    was closed with its viewer) or when the file's layers are gone. A result whose
    source layer (``sources``: channel index -> the layer the step read) was deleted
    while the step ran is not added (one warning says so). At the end a visible layer of
    the file is selected: napari selects each layer added, often a hidden one. Tuples of
    other layer types (``'vectors'``) are added as new layers; the file's layers of the
    kinds in ``removes`` (a kind the result makes anew, or no longer has) are removed
    first, with the first layer, so that Undo puts them back.
    """

    _active: set = set()  # Qt timers keep no reference to the adder: we do, until it ends

    def __init__(self, viewer, tuples: list[tuple], on_done: Callable | None = None,
                 alive: Callable[[], bool] = lambda: True, sources: dict | None = None,
                 removes: tuple[str, ...] = ()):
        self._viewer = weakref.ref(viewer)
        self._removes = tuple(removes)
        self._pending = list(tuples)
        self._on_done = on_done
        self._alive = alive
        # channel index -> the layer the step read it from: a result whose source layer
        # was deleted while the step ran is not added
        self._sources = {index: weakref.ref(layer) for index, layer in (sources or {}).items()}
        self._dropped: list[str] = []
        self._file = None
        self._undo: UndoStep | None = None
        self._paused = None  # the widgets whose drawing waits until the adder ends
        self._batched = None  # the layer list whose scene updates wait until then
        self._views: DeferredViews | None = None  # new layers' visuals and controls, later
        self._collection_held = False  # Python's garbage collection waits until the end

    def start(self) -> None:
        from qtpy.QtCore import QTimer

        LayerAdder._active.add(self)
        self._paused = _pause_drawing(self._viewer(), None)
        self._views = DeferredViews(self._viewer())
        self._collection_held = hold_collection()
        if not self._views.defers:  # see _add_next: deferred views make the batch needless
            self._batched = _batch_scene_updates(self._viewer(), None)
        QTimer.singleShot(0, self._next)

    def _next(self) -> None:
        try:
            self._add_next()
        except BaseException:
            self._finish(None)  # whatever went wrong, the window draws again
            raise

    def _add_next(self) -> None:
        viewer = self._viewer()
        if viewer is None or not self._alive():
            self._finish(None)
            return
        # The views (visual, controls) of a layer inserted before, each in a turn of its
        # own, once the next layer is in: napari's canvas skips its scene update (30-120
        # ms) while a layer has no visual, and the last visual is built with it held
        # (DeferredViews), so that it runs once, in _end_scene (a batch of the layer
        # list would run it once as well, but its end collects garbage first: 70-110 ms)
        views = self._views
        if views is None:  # the adder ended meanwhile
            return
        if views and (not self._pending or views.pending_layers() > 1):
            try:
                views.build_next()
            except Exception as exc:  # noqa: BLE001 - a Qt timer slot must not raise
                _notify_error("Drawing a result", exc)
                self._finish(None)  # builds the others
                return
            self._next_later(viewer)
            return
        if not self._pending:  # the end; or a click built the last views already
            if self._file is None:  # nothing was added
                self._finish(None)
            else:
                self._end_scene(viewer)
            return
        data, kwargs, layer_type = self._pending.pop(0)
        info = kwargs["metadata"]["nanosims"]
        self._file = info["acquisition_id"]
        if not _sources_present(viewer, info):  # the file's layers were deleted meanwhile
            self._finish(None)
            return
        source = self._sources.get(info.get("detector_index"))
        if source is not None and (source() is None or source() not in viewer.layers):
            if info.get("label") not in self._dropped:
                self._dropped.append(info.get("label"))
            self._next_later(viewer)
            return
        undo = self._undo_step(viewer, info)
        try:
            layer = (_update_matching(viewer, data, kwargs, before=undo.remember)
                     if layer_type == "image" else None)
            if layer is None:
                with views.inserting():
                    layer = _add_unselected(viewer, data, kwargs, layer_type)
                undo.added(layer)
        except Exception as exc:  # noqa: BLE001 - a Qt timer slot must not raise (PyQt6
            # aborts the process on an exception that leaves a slot): say what failed
            self._finish(None)
            _notify_error(f"Adding {kwargs.get('name', 'a layer')}", exc)
            return
        if kwargs.get("visible", True) and layer_type == "image":
            for other in list(viewer.layers):
                other_info = nanosims_info(other)
                if (other is not layer and other_info
                        and other_info["acquisition_id"] == info["acquisition_id"]
                        and other_info["detector_index"] == info["detector_index"]
                        and other_info.get("kind") != info["kind"]
                        and other.ndim == layer.ndim):
                    undo.remember_visibility(other)
                    other.visible = False
        self._next_later(viewer)

    def _undo_step(self, viewer, info: dict):
        """The Session tab's record of what this result adds and replaces (one per
        result, opened with its first layer, when the kinds in ``removes`` go)."""
        if self._undo is None:
            from ._undo import UndoHistory

            self._undo = UndoHistory.of(viewer).begin(info["acquisition_id"],
                                                      info.get("kind", "result"))
            for layer in list(viewer.layers):  # what this result makes anew or drops
                other = nanosims_info(layer)
                if (other and other["acquisition_id"] == info["acquisition_id"]
                        and other.get("kind") in self._removes):
                    self._undo.removed(layer, list(viewer.layers).index(layer))
                    viewer.layers.remove(layer)
        return self._undo

    def _next_later(self, viewer) -> None:
        from qtpy.QtCore import QTimer

        # A timer of 1 ms, not 0: Qt runs zero-delay calls before the timers and input
        # waiting (two additions ran back to back, the window frozen through both);
        # the end in two turns of its own: the canvas's one scene update, then the
        # drawing resumed and the selection (Python's garbage collection in a third).
        more = self._pending or self._views
        QTimer.singleShot(1, self._next if more else lambda: self._end_scene(viewer))

    def _end_scene(self, viewer) -> None:
        from qtpy.QtCore import QTimer

        try:
            error = self._views.close() if self._views is not None else None
            self._views = None
            if error is not None:
                raise error
            self._batched = _batch_scene_updates(None, self._batched)
        except Exception as exc:  # noqa: BLE001 - a Qt timer slot must not raise
            self._finish(None)
            _notify_error("Showing the result", exc)
            return
        QTimer.singleShot(1, lambda: self._end(viewer))

    def _end(self, viewer) -> None:
        try:
            self._finish(viewer)
        except Exception as exc:  # noqa: BLE001 - a Qt timer slot must not raise
            self._finish(None)
            _notify_error("Showing the result", exc)

    def _finish(self, viewer) -> None:
        LayerAdder._active.discard(self)
        error = None
        try:  # the layers' views are all built before the canvas's one scene update
            if self._views is not None:
                error = self._views.close()
        finally:
            self._views = None
            self._batched = _batch_scene_updates(None, self._batched)
            self._paused = _pause_drawing(None, self._paused)
            release_collection(self._collection_held)
            self._collection_held = False
        if error is not None:
            _notify_error("Drawing a result", error)
        callback, self._on_done = self._on_done, None
        self._pending = []
        if viewer is None or not self._alive():
            return
        if self._dropped:
            from napari.utils.notifications import show_warning

            show_warning(f"{', '.join(self._dropped)}: the layer was deleted while the step "
                         "ran; its result was not added.")
        if self._file is not None:  # napari selected the last layer added, often hidden
            from .file_view import FileView

            FileView.of(viewer).select_shown(self._file)
        if callback is not None:
            callback()


def _add_unselected(viewer, data, kwargs: dict, layer_type: str = "image"):
    """``viewer.add_image`` (``add_<layer_type>``) without making the new layer the
    selected one.

    napari selects every layer it adds: the layer controls switch to it, the layer
    buttons restyle, and when it is hidden (sums, coverage) the File view selects a
    visible one again; two selection changes per layer, a quarter of the time adding it
    takes. The adder selects once, at the end (:meth:`LayerAdder._finish`). The switch is
    a private attribute of napari's layer list: without it, napari selects as usual.
    """
    layers = _unproxied(viewer).layers
    activate = getattr(layers, "_activate_on_insert", None)
    if isinstance(activate, bool):
        layers._activate_on_insert = False
    try:
        return getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    finally:
        if isinstance(activate, bool):
            layers._activate_on_insert = activate


def _sources_present(viewer, info: dict) -> bool:
    """True while the viewer still has layers of the result's acquisition."""
    return any((nanosims_info(layer) or {}).get("acquisition_id") == info["acquisition_id"]
               for layer in viewer.layers)


def _update_matching(viewer, data, kwargs: dict, before: Callable | None = None):
    """Put a new result into our existing layer of the same file, channel and kind.

    Returns that layer, or None when there is none. Updating in place keeps the layer's
    place in the list and avoids napari's garbage collection on every layer removal
    (a quarter of a second each in a large session).
    """
    info = kwargs["metadata"]["nanosims"]
    for layer in viewer.layers:
        other = nanosims_info(layer)
        if (other and other["acquisition_id"] == info["acquisition_id"]
                and other["detector_index"] == info["detector_index"]
                and other.get("kind") == info["kind"]
                and getattr(layer.data, "ndim", layer.ndim) == np.ndim(data)):
            if before is not None:  # the Session tab keeps what is replaced, for Undo
                before(layer)
            layer.data = data
            layer.metadata = kwargs["metadata"]
            if "contrast_limits" in kwargs:
                layer.contrast_limits = kwargs["contrast_limits"]
            if "colormap" in kwargs and not getattr(layer, "rgb", False):
                layer.colormap = kwargs["colormap"]
            return layer
    return None


def reset_in_order(combo) -> None:
    """Re-read a drop-down's choices and show them in the order its choices function gives.

    magicgui keeps the items it already has and appends new ones, so a list filled while
    a file's layers arrive one by one ends up in arrival order ("12C, sum of ion
    channels, 13C, ..."). The list is rebuilt; the chosen value is kept when it is still
    offered, and ``changed`` is emitted only when the value really changed.
    """
    previous = combo.value
    with combo.changed.blocked():
        native = combo.native
        native.blockSignals(True)
        try:
            native.clear()
        finally:
            native.blockSignals(False)
        combo.reset_choices()
        if previous is not None and any(choice is previous or choice == previous
                                        for choice in combo.choices):
            combo.value = previous
    if combo.value is not previous and combo.value != previous:
        combo.changed.emit(combo.value)


def refresh_choices(widget, skip=()) -> None:
    """:func:`reset_in_order` every drop-down of a tab (its ComboBox attributes, wherever
    the layout put them) whose choices come from a function (files, channels, presets,
    layers), except ``skip``."""
    from magicgui.widgets import ComboBox

    for combo in [value for value in vars(widget).values() if isinstance(value, ComboBox)]:
        if combo not in skip and callable(getattr(combo, "_default_choices", None)):
            reset_in_order(combo)


#: The events of a Labels layer that say its pixels changed (painting, filling, new data).
EDIT_EVENTS = ("data", "paint", "set_data")


def watch_edits(old, new, slot: Callable):
    """Call ``slot`` whenever ``new``'s pixels are edited, and no longer for ``old``'s.

    Returns ``new`` (the layer now watched; either may be None)."""
    for layer, connect in ((old, False), (new, True)):
        if layer is None:
            continue
        for emitter in EDIT_EVENTS:
            event = getattr(layer.events, emitter, None)
            if event is not None:
                (event.connect if connect else event.disconnect)(slot)
    return new
