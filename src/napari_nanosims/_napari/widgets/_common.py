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
    "LayerAdder",
]


class LayerAdder:
    """Adds layer data tuples to a viewer one per event-loop turn.

    One ``add_image`` on the demo costs 60-70 ms (texture upload): adding 14 at once would
    freeze the window for a second. A result replaces the data of our layer of the same
    acquisition id, channel and kind; the source of a new visible layer is hidden so that
    the picture stays the same kind of picture. What is left is dropped quietly when
    ``alive()`` turns False (the widget was closed with its viewer) or when the file's
    layers are gone.
    """

    _active: set = set()  # Qt timers keep no reference to the adder: we do, until it ends

    def __init__(self, viewer, tuples: list[tuple], on_done: Callable | None = None,
                 alive: Callable[[], bool] = lambda: True):
        self._viewer = weakref.ref(viewer)
        self._pending = list(tuples)
        self._on_done = on_done
        self._alive = alive

    def start(self) -> None:
        from qtpy.QtCore import QTimer

        LayerAdder._active.add(self)
        QTimer.singleShot(0, self._next)

    def _next(self) -> None:
        from qtpy.QtCore import QTimer

        viewer = self._viewer()
        if viewer is None or not self._pending or not self._alive():
            self._finish(None)
            return
        data, kwargs, _ = self._pending.pop(0)
        info = kwargs["metadata"]["nanosims"]
        if not _sources_present(viewer, info):  # the file's layers were deleted meanwhile
            self._finish(None)
            return
        try:
            layer = _update_matching(viewer, data, kwargs)
            if layer is None:
                layer = viewer.add_image(data, **kwargs)
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
                    other.visible = False
        if self._pending:
            QTimer.singleShot(0, self._next)
        else:
            self._finish(viewer)

    def _finish(self, viewer) -> None:
        LayerAdder._active.discard(self)
        callback, self._on_done = self._on_done, None
        self._pending = []
        if callback is not None and viewer is not None and self._alive():
            callback()


def _sources_present(viewer, info: dict) -> bool:
    """True while the viewer still has layers of the result's acquisition."""
    return any((nanosims_info(layer) or {}).get("acquisition_id") == info["acquisition_id"]
               for layer in viewer.layers)


def _update_matching(viewer, data, kwargs: dict):
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
            layer.data = data
            layer.metadata = kwargs["metadata"]
            if "contrast_limits" in kwargs:
                layer.contrast_limits = kwargs["contrast_limits"]
            if "colormap" in kwargs and not getattr(layer, "rgb", False):
                layer.colormap = kwargs["colormap"]
            return layer
    return None


