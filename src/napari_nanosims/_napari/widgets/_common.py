"""Helpers shared by the dock widgets: adding result layers without blocking the event
loop. The Qt-free layer lookups are in :mod:`napari_nanosims._napari.lookups` (re-exported
here for the tabs); the worker runner is in :mod:`._runner`."""

from __future__ import annotations

import weakref
from collections.abc import Callable

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

__all__ = [
    "KIND_CLEANED", "KIND_CORRECTED", "KIND_ALIGNED", "KIND_SUM", "KIND_COVERAGE",
    "KIND_RATIO", "KIND_SIGMA", "KIND_DISPLAY", "NOT_A_CHANNEL", "nanosims_info",
    "acquisition_choices", "channel_layers", "source_layers", "acquisition_from_layers",
    "ResultRegistry", "RESULTS", "layer_state", "results_for_layers", "coverage_layer_data",
    "LayerAdder", "reset_in_order", "refresh_choices",
]


class LayerAdder:
    """Adds layer data tuples to a viewer one per event-loop turn.

    One ``add_image`` on the demo costs 60-70 ms (texture upload): adding 14 at once would
    freeze the window for a second. A result replaces the data of our layer of the same
    acquisition id, channel and kind; the source of a new visible layer is hidden so that
    the picture stays the same kind of picture. What is left is dropped quietly when
    ``alive()`` turns False (the widget was closed with its viewer) or when the file's
    layers are gone. A result whose source layer (``sources``: channel index -> the
    layer the step read) was deleted while the step ran is not added (one warning says
    so). At the end a visible layer of the file is selected: napari selects each layer
    added, often a hidden one.
    """

    _active: set = set()  # Qt timers keep no reference to the adder: we do, until it ends

    def __init__(self, viewer, tuples: list[tuple], on_done: Callable | None = None,
                 alive: Callable[[], bool] = lambda: True, sources: dict | None = None):
        self._viewer = weakref.ref(viewer)
        self._pending = list(tuples)
        self._on_done = on_done
        self._alive = alive
        # channel index -> the layer the step read it from: a result whose source layer
        # was deleted while the step ran is not added
        self._sources = {index: weakref.ref(layer) for index, layer in (sources or {}).items()}
        self._dropped: list[str] = []
        self._file = None
        self._undo = None

    def start(self) -> None:
        from qtpy.QtCore import QTimer

        LayerAdder._active.add(self)
        QTimer.singleShot(0, self._next)

    def _next(self) -> None:
        viewer = self._viewer()
        if viewer is None or not self._pending or not self._alive():
            self._finish(None)
            return
        data, kwargs, _ = self._pending.pop(0)
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
            layer = _update_matching(viewer, data, kwargs, before=undo.remember)
            if layer is None:
                layer = viewer.add_image(data, **kwargs)
                undo.added(layer)
        except Exception as exc:  # noqa: BLE001 - a Qt timer slot must not raise (PyQt6
            # aborts the process on an exception that leaves a slot): say what failed
            self._finish(None)
            _notify_error(f"Adding {kwargs.get('name', 'a layer')}", exc)
            return
        if kwargs.get("visible", True):
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
        result, opened with its first layer)."""
        if self._undo is None:
            from ._undo import UndoHistory

            self._undo = UndoHistory.of(viewer).begin(info["acquisition_id"],
                                                      info.get("kind", "result"))
        return self._undo

    def _next_later(self, viewer) -> None:
        from qtpy.QtCore import QTimer

        if self._pending:
            QTimer.singleShot(0, self._next)
        else:
            self._finish(viewer)

    def _finish(self, viewer) -> None:
        LayerAdder._active.discard(self)
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
