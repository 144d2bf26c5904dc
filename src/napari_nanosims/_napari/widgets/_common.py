"""Helpers shared by the dock widgets: finding an acquisition's layers by id, the tabs'
results found again from their layers, and adding result layers without blocking the
event loop. The worker runner is in :mod:`._runner`."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...io.header import ImHeader
from ...model import Acquisition, channels_from_header
from ...processing._frames import FrameStack
from ..layers import KIND_RAW, derived_layer_data
from ._runner import _notify_error

KIND_CLEANED, KIND_CORRECTED = "cleaned", "corrected"
KIND_ALIGNED, KIND_SUM, KIND_COVERAGE = "aligned", "aligned sum", "coverage"
KIND_RATIO, KIND_SIGMA, KIND_DISPLAY = "ratio", "ratio sigma", "ratio display"
# The "detector_index" of layers that show no channel: negative (never a channel's), and
# one per kind, so that a new result replaces the layer of its kind of the same file.
NOT_A_CHANNEL = {KIND_COVERAGE: -1, KIND_RATIO: -10, KIND_SIGMA: -11, KIND_DISPLAY: -12}
def nanosims_info(layer) -> dict | None:
    """The ``metadata['nanosims']`` entry of a layer, or None for foreign layers."""
    info = getattr(layer, "metadata", {}).get("nanosims") if layer is not None else None
    return info if isinstance(info, dict) and "acquisition_id" in info else None


def acquisition_choices(viewer) -> list[tuple[str, str]]:
    """(display name, acquisition id) of every opened file with raw layers in the viewer.

    Two files with the same name from different folders get their folder added.
    """
    found: dict[str, str] = {}
    for layer in viewer.layers:
        info = nanosims_info(layer)
        if info and info.get("kind") == KIND_RAW:
            found.setdefault(info["acquisition_id"], info["source_path"])
    stems = [Path(path).stem for path in found.values()]
    choices = []
    for (acquisition_id, path), stem in zip(found.items(), stems, strict=True):
        name = stem if stems.count(stem) == 1 else f"{stem} ({Path(path).parent})"
        choices.append((name, acquisition_id))
    return choices


def channel_layers(viewer, acquisition_id: str, kind: str = KIND_RAW) -> dict[int, Any]:
    """Layers of ``kind`` that belong to ``acquisition_id``: channel index -> layer."""
    found = {}
    for layer in viewer.layers:
        info = nanosims_info(layer)
        if info and info["acquisition_id"] == acquisition_id and info.get("kind") == kind:
            found[int(info["detector_index"])] = layer
    return dict(sorted(found.items()))


def source_layers(viewer, acquisition_id: str, prefer=()) -> dict[int, Any]:
    """Per channel, the layer of the first kind in ``prefer`` that exists, else the raw one."""
    layers = channel_layers(viewer, acquisition_id)
    for kind in reversed(tuple(prefer)):  # later kinds first, so earlier ones win
        layers.update(channel_layers(viewer, acquisition_id, kind))
    return layers


def acquisition_from_layers(viewer, acquisition_id: str, prefer=()) -> Acquisition | None:
    """The acquisition behind an id: the tab's own result when its layers are intact, else
    one built from the layers' data (lazy).

    Each channel comes from the first kind in ``prefer`` (for example corrected, then
    cleaned) that has a layer for it, else from the raw layer. When every one of those
    layers still holds what a tab produced (see :class:`ResultRegistry`), that tab's
    result is returned with everything layer data cannot carry: translations, the
    acquisition before alignment, raw counts, variance and coverage, so that statistics
    in the window equal the library's. Otherwise (layers edited, replaced, mixed from
    different runs, or opened from a file) the acquisition is rebuilt from the layers'
    data, with the history of the layers used.
    """
    if isinstance(prefer, str):
        prefer = (prefer,)
    if not channel_layers(viewer, acquisition_id):
        return None
    layers = source_layers(viewer, acquisition_id, prefer)
    first = nanosims_info(next(iter(layers.values())))
    header = ImHeader.from_dict(first["header"])
    if sorted(layers) != list(range(header.n_masses)):
        return None  # some channel layers were deleted: nothing consistent to process
    RESULTS.watch(viewer.layers)
    acquisition = RESULTS.lookup(layers, acquisition_id)
    if acquisition is None:
        counts = FrameStack([layer.data for layer in layers.values()])
        history = max((nanosims_info(layer)["history"] for layer in layers.values()), key=len)
        from ...model import HistoryRecord

        records = tuple(HistoryRecord(h["step"], h.get("parameters", {}), h.get("version", ""))
                        for h in history)
        acquisition = Acquisition(header=header, channels=channels_from_header(header),
                                  counts=counts, path=first["source_path"], history=records,
                                  acquisition_id=acquisition_id)
    RESULTS.built_from(acquisition, layers)
    return acquisition


def _reference(value) -> Callable[[], Any]:
    """A weak reference to ``value`` when it takes one, else a callable that returns it."""
    try:
        return weakref.ref(value)
    except TypeError:
        return lambda: value


class _Remembered:
    """One tab's result and, per channel it did not produce, the data its input held."""

    __slots__ = ("result", "inputs")

    def __init__(self, result: Acquisition, inputs: dict[int, Callable[[], Any]]):
        self.result = result
        self.inputs = inputs


class ResultRegistry:
    """The results of the tabs, found again from the layers they added (no Qt).

    Layer data carry counts and a history only; a tab's result :class:`Acquisition` also
    holds the translations, the acquisition before alignment, raw counts, variance and
    coverage that exact ROI statistics need. :meth:`remember` keeps a result for the
    arrays handed to its new layers; :meth:`lookup` gives it back for a set of channel
    layers only while each layer holds the very array the result produced (identity, so
    an edited or replaced layer falls back), or, for a channel the step left alone (SE in
    the Correct tab), the very data the step's input was built from.

    Nothing is kept longer than the layers: an entry goes when its array is freed (the
    layer was removed or given new data; weak references) or at once when a watched
    viewer removes the layer. Nothing goes into ``layer.metadata``, which napari copies
    and the writers serialise. Safe to call from worker threads: weak-reference
    callbacks only queue keys, which the next call under the lock drops.
    """

    def __init__(self):
        self._lock = threading.RLock()
        # id(array) -> (weak reference to the array, the entry, channel index)
        self._by_data: dict[int, tuple[weakref.ref, _Remembered, int]] = {}
        self._dead: list[int] = []
        self._sources: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._watched: dict[int, weakref.ref] = {}

    # -- recording --------------------------------------------------------------------
    def built_from(self, acquisition: Acquisition, layers: dict[int, Any]) -> None:
        """Note that ``acquisition`` stands for these channel layers (index -> layer)."""
        with self._lock:
            self._sources[acquisition] = {index: _reference(layer.data)
                                          for index, layer in layers.items()}

    def remember(self, result: Acquisition, produced: dict[int, Any],
                 source: Acquisition | None) -> None:
        """Keep ``result`` for ``produced`` (channel index -> the array given to its layer).

        ``source`` is the acquisition the step started from (as
        :func:`acquisition_from_layers` returned it); channels not in ``produced`` must
        keep the data its layers held. Arrays that take no weak reference are skipped.
        """
        with self._lock:
            self._purge()
            built = self._sources.get(source, {}) if source is not None else {}
            entry = _Remembered(result, {index: reference for index, reference
                                         in built.items() if index not in produced})
            for index, array in produced.items():
                key = id(array)
                try:
                    reference = weakref.ref(array, lambda _ref, key=key: self._dead.append(key))
                except TypeError:
                    continue
                self._by_data[key] = (reference, entry, int(index))

    # -- finding ----------------------------------------------------------------------
    def _hit(self, data):
        found = self._by_data.get(id(data))
        return found if found is not None and found[0]() is data else None

    def lookup(self, layers: dict[int, Any], acquisition_id: str) -> Acquisition | None:
        """The remembered result whose layers these are (channel index -> layer), or None."""
        with self._lock:
            self._purge()
            hits = {index: self._hit(layer.data) for index, layer in layers.items()}
            entries = {id(hit[1]): hit[1] for hit in hits.values() if hit is not None}
            if len(entries) != 1:
                return None  # none, or layers of different runs
            entry = next(iter(entries.values()))
            result = entry.result
            if (result.acquisition_id != acquisition_id
                    or sorted(layers) != list(range(result.shape[1]))):
                return None
            for index, layer in layers.items():
                hit = hits[index]
                if hit is not None:
                    if hit[2] != index:
                        return None
                elif index not in entry.inputs or entry.inputs[index]() is not layer.data:
                    return None
            return result

    def holds(self, acquisition) -> bool:
        """True when ``acquisition`` is a remembered result."""
        with self._lock:
            self._purge()
            return any(entry.result is acquisition
                       for _, entry, _ in list(self._by_data.values()))

    def __len__(self) -> int:
        """How many results are remembered."""
        with self._lock:
            self._purge()
            return len({id(entry) for _, entry, _ in list(self._by_data.values())})

    # -- releasing --------------------------------------------------------------------
    def forget(self, data) -> None:
        """Drop what was remembered for the array ``data`` (its layer was removed)."""
        with self._lock:
            if self._hit(data) is not None:
                del self._by_data[id(data)]

    def watch(self, layers) -> None:
        """Forget a layer's result as soon as ``layers`` (a viewer's LayerList) removes it,
        instead of when the layer is garbage-collected. Connects once per list."""
        with self._lock:
            known = self._watched.get(id(layers))
            if known is not None and known() is layers:
                return
            self._watched = {key: ref for key, ref in self._watched.items()
                             if ref() is not None}
            self._watched[id(layers)] = weakref.ref(layers)
        layers.events.removed.connect(self._layer_removed)

    def _layer_removed(self, event) -> None:
        self.forget(getattr(getattr(event, "value", None), "data", None))

    def _purge(self) -> None:
        """Drop entries whose arrays were freed (queued by the weak-reference callbacks)."""
        while self._dead:
            key = self._dead.pop()
            found = self._by_data.get(key)
            if found is not None and found[0]() is None:
                del self._by_data[key]


RESULTS = ResultRegistry()


def layer_state(layer) -> dict[str, Any]:
    """What a derived layer copies from its source (read on the GUI thread)."""
    return {"scale": tuple(layer.scale), "units": tuple(str(u) for u in layer.units),
            "axis_labels": tuple(layer.axis_labels), "colormap": layer.colormap.name,
            "blending": layer.blending, "visible": layer.visible}


def results_for_layers(sources: dict[int, dict], result: Acquisition, kind: str, *,
                       sums: bool = False, source: Acquisition | None = None) -> list[tuple]:
    """Layer data tuples for every channel of ``result`` (runs in the worker).

    ``sources`` maps a channel index to ``(metadata, layer_state)`` of its source layer.
    With ``source`` (the acquisition the step started from, as
    :func:`acquisition_from_layers` gave it), ``result`` is remembered for the new
    (frames, height, width) layers, so that later tabs get it back whole (see
    :class:`ResultRegistry`); sums are never remembered.
    """
    history = result.history_dicts()
    tuples = []
    produced = {}
    for index, (info, state) in sources.items():
        if sums:
            data = result.sums[index]
            tuples.append(derived_layer_data(info, state, data, kind, history, two_d=True))
        else:
            data = produced[index] = result.counts[:, index]
            tuples.append(derived_layer_data(info, state, data, kind, history))
    if source is not None and not sums:
        RESULTS.remember(result, produced, source)
    return tuples


def coverage_layer_data(source: tuple, accumulation, result: Acquisition) -> tuple:
    """A (height, width) layer: how many of the summed frames covered each pixel."""
    info, state = source
    info = dict(info, detector_index=NOT_A_CHANNEL[KIND_COVERAGE], label=KIND_COVERAGE)
    state = dict(state, colormap="gray", visible=False)
    data, kwargs, kind = derived_layer_data(info, state, accumulation.coverage.astype(np.float32),
                                            KIND_COVERAGE, result.history_dicts(), two_d=True)
    kwargs["name"] = kwargs["name"].replace(f"{KIND_COVERAGE} · {KIND_COVERAGE}",
                                            KIND_COVERAGE)
    kwargs["contrast_limits"] = (0.0, max(float(accumulation.coverage.max()), 1.0))
    return data, kwargs, kind


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


