"""Qt-free layer lookups: an acquisition's layers by id, the acquisition rebuilt from its
layers (or the tabs' full results found again behind them), and the layer data of
results. The widgets use these; so can scripts and tests, with no Qt."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..io.header import ImHeader
from ..model import Acquisition, channels_from_header
from ..processing._frames import FrameStack
from .layers import KIND_RAW, derived_layer_data

__all__ = [
    "KIND_CLEANED", "KIND_CORRECTED", "KIND_ALIGNED", "KIND_SUM", "KIND_COVERAGE",
    "KIND_RATIO", "KIND_SIGMA", "KIND_DISPLAY", "KIND_FIELD", "NOT_A_CHANNEL", "nanosims_info",
    "layer_file", "top_visible_layer", "FILE_KEYS", "folder_tags", "file_paths",
    "acquisition_choices", "channel_layers", "source_layers", "acquisition_from_layers",
    "ResultRegistry", "RESULTS", "layer_state", "results_for_layers", "coverage_layer_data",
]

KIND_CLEANED, KIND_CORRECTED = "cleaned", "corrected"
KIND_ALIGNED, KIND_SUM, KIND_COVERAGE = "aligned", "aligned sum", "coverage"
KIND_RATIO, KIND_SIGMA, KIND_DISPLAY = "ratio", "ratio sigma", "ratio display"
KIND_FIELD = "displacement field"  # a Vectors layer over the aligned stacks
# The "detector_index" of layers that show no channel: negative (never a channel's), and
# one per kind, so that a new result replaces the layer of its kind of the same file.
NOT_A_CHANNEL = {KIND_COVERAGE: -1, KIND_RATIO: -10, KIND_SIGMA: -11, KIND_DISPLAY: -12,
                 KIND_FIELD: -20}
def nanosims_info(layer) -> dict | None:
    """The ``metadata['nanosims']`` entry of a layer, or None for foreign layers."""
    info = getattr(layer, "metadata", {}).get("nanosims") if layer is not None else None
    return info if isinstance(info, dict) and "acquisition_id" in info else None


def layer_file(layer) -> str | None:
    """The acquisition id a layer belongs to: our channel and result layers, and the
    markers, ROIs and overlays the tabs add for a file (``metadata['nanosims_file']``
    and the older keys); None for foreign layers."""
    info = nanosims_info(layer)
    if info is not None:
        return info["acquisition_id"]
    metadata = getattr(layer, "metadata", None) or {}
    for key in FILE_KEYS:
        value = metadata.get(key)
        if isinstance(value, str):
            return value
    return None


def top_visible_layer(viewer, acquisition_id: str):
    """The top-most visible image of ``acquisition_id`` (our channel and result layers
    first, then its markers, ROIs and field arrows), or None."""
    visible = [layer for layer in reversed(list(viewer.layers))
               if layer.visible and layer_file(layer) == acquisition_id]
    return next((layer for layer in visible if (info := nanosims_info(layer)) is not None
                 and info.get("kind") != KIND_FIELD),
                visible[0] if visible else None)


#: The metadata keys that tie a marker, ROI or overlay layer to a file's acquisition id.
#: Metadata key of the ROI Labels layers the ROIs tab makes (value: the acquisition id).
ROI_KEY = "nanosims_rois"
FILE_KEYS = ("nanosims_file", "nanosims_overlay", ROI_KEY)


def folder_tags(paths: dict[str, str]) -> dict[str, str]:
    """A short name per file (key -> ``stem`` or ``stem (folder)``) that tells files apart.

    Files whose names (stems) are unique keep them; files sharing a stem get the fewest
    trailing folder names that differ (``cells_01 (run A)``, ``cells_01 (2023/x)``).
    """
    by_stem: dict[str, list[str]] = {}
    for key, path in paths.items():
        by_stem.setdefault(Path(path).stem, []).append(key)
    tags = {}
    for stem, keys in by_stem.items():
        if len(keys) == 1:
            tags[keys[0]] = stem
            continue
        parents = {key: Path(paths[key]).resolve().parent.parts for key in keys}
        depth = max(len(parts) for parts in parents.values())
        for count in range(1, depth + 1):
            tails = {key: "/".join(parts[-count:]) for key, parts in parents.items()}
            if len(set(tails.values())) == len(keys):
                break
        seen: dict[str, int] = {}
        for key in keys:  # the same file opened twice: numbered in opening order
            seen[tails[key]] = seen.get(tails[key], 0) + 1
            number = f" #{seen[tails[key]]}" if seen[tails[key]] > 1 else ""
            tags[key] = f"{stem} ({tails[key]}){number}"
    return tags


def file_paths(viewer) -> dict[str, str]:
    """acquisition id -> source path of every opened file with raw layers, in layer order."""
    found: dict[str, str] = {}
    for layer in viewer.layers:
        info = nanosims_info(layer)
        if info and info.get("kind") == KIND_RAW:
            found.setdefault(info["acquisition_id"], info["source_path"])
    return found


def acquisition_choices(viewer) -> list[tuple[str, str]]:
    """(display name, acquisition id) of every opened file with raw layers in the viewer.

    Two files with the same name from different folders get their folders added
    (:func:`folder_tags`).
    """
    found = file_paths(viewer)
    tags = folder_tags(found)
    return [(tags[acquisition_id], acquisition_id) for acquisition_id in found]


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
    assert first is not None  # channel layers carry nanosims metadata
    header = ImHeader.from_dict(first["header"])
    if sorted(layers) != list(range(header.n_masses)):
        return None  # some channel layers were deleted: nothing consistent to process
    RESULTS.watch(viewer.layers)
    acquisition = RESULTS.lookup(layers, acquisition_id)
    if acquisition is None:
        counts = FrameStack([layer.data for layer in layers.values()])
        history = max((cast(dict, nanosims_info(layer))["history"]
                       for layer in layers.values()), key=len)
        from ..model import HistoryRecord

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
                    # mypy cannot type a lambda with a default argument as a callback
                    reference = weakref.ref(
                        array, lambda _ref, key=key: self._dead.append(key))  # type: ignore[misc]
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
    kwargs["name"] = kwargs["name"].replace(f"{KIND_COVERAGE} {KIND_COVERAGE}", KIND_COVERAGE)
    kwargs["contrast_limits"] = (0.0, max(float(accumulation.coverage.max()), 1.0))
    return data, kwargs, kind


