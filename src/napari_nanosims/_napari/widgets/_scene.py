"""What napari draws and builds while :class:`._common.LayerAdder` puts results in: the
canvas and layer list paused, each new layer's visual and controls built in event-loop
turns of their own (:class:`DeferredViews`), the canvas's scene updated once at the end
(through the layer list's batch only where the views cannot be deferred), and Python's
garbage collection held (:func:`hold_collection`).

napari's own work per layer added is what keeps the window from repainting: on a slow
2-core machine without a GPU one ``add_image`` of the demo took 120-160 ms (its vispy
visual 60-70, its controls 40-60, the model and its event connections the rest), and the
repaint after it made gaps of 165-225 ms. Everything here is a saving only: where one
of napari's private attributes is missing, that part is done as napari does it.
"""

from __future__ import annotations

import contextlib
import gc
import types
import weakref
from typing import Any


def _unproxied(viewer):
    """The viewer itself: napari hands plugin widgets a proxy that warns on every private
    attribute. The private attributes used here only spare work, and each is looked up
    with a fallback: where napari drops them, layers are added as before."""
    return getattr(viewer, "__wrapped__", viewer)


_PAUSES = "napari_nanosims_pauses"  # a Qt property: adders that paused the widget
_BATCHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer list -> adders


def _batch_scene_updates(viewer, layers):
    """Hold napari's scene-graph updates for ``viewer``'s layer list (returns the list),
    or release ``layers`` (returns None); held while any adder runs.

    napari reorders the canvas's visuals, places the overlays and recomputes the
    camera's view after every layer added: a fifth of what adding a layer costs (50 of
    260 ms on a slow 2-core machine without a GPU). Inside the layer list's batch (its
    public ``batched_update`` events) the canvas waits and updates once at the end.
    """
    if layers is None:
        if viewer is None:
            return None
        layers = _unproxied(viewer).layers
        count = _BATCHES.get(layers, 0)
        _BATCHES[layers] = count + 1
        if count == 0:
            layers.events.begin_batch()
        return layers
    count = _BATCHES.get(layers, 1) - 1
    _BATCHES[layers] = max(count, 0)
    if count <= 0:
        with contextlib.suppress(RuntimeError, AttributeError):  # the window was closed
            layers.events.end_batch()
    return None


def _pause_drawing(viewer, widgets):
    """Pause the drawing of ``viewer``'s canvas and layer list (returns those widgets),
    or resume ``widgets`` (returns None); paused while any adder runs.

    Without it the canvas draws every visible layer and the list repaints every row
    (icons drawn from SVG) after each layer added: without a GPU (software OpenGL) that
    costs as much as adding the layer, and it grows with the layers shown. Paused, they
    draw once at the end, when every result is in and the results' sources are hidden.
    The widgets are napari's private attributes: without them, nothing is paused.
    """
    if widgets is None:
        try:
            qt_viewer = _unproxied(viewer).window._qt_viewer
            widgets = [qt_viewer.canvas.native, qt_viewer.layers]
        except (AttributeError, RuntimeError):  # no window (headless), or renamed
            return None
        step = 1
    else:
        step = -1
    for widget in widgets:
        try:
            pauses = max(0, int(widget.property(_PAUSES) or 0) + step)
            widget.setProperty(_PAUSES, pauses)
            widget.setUpdatesEnabled(pauses == 0)  # enabling again draws
        except RuntimeError:  # the window was closed meanwhile
            pass
    return widgets if step == 1 else None


_COLLECTOR = {"holds": 0, "was_enabled": False}  # adders holding Python's collector


def hold_collection() -> bool:
    """Hold Python's cyclic garbage collection while an adder runs (returns True; give it
    to :func:`release_collection` at the end).

    A full collection walks every object napari made since the heap was frozen (the
    layers, their visuals and controls: :func:`._common.freeze_startup_heap`), 70-110 ms
    in a session with a few dozen layers, and one fell due now and then inside a turn
    that built a visual (60 ms): a stall of 150-170 ms. Held, it runs once at the end, in
    an event-loop turn of its own. Objects freed by their reference counts (arrays,
    replaced results) are freed at once all the same.
    """
    if _COLLECTOR["holds"] == 0:
        _COLLECTOR["was_enabled"] = gc.isenabled()
        gc.disable()
    _COLLECTOR["holds"] += 1
    return True


def release_collection(held: bool) -> None:
    """End a :func:`hold_collection`; the last one collects in a later turn."""
    if not held:
        return
    _COLLECTOR["holds"] = max(0, _COLLECTOR["holds"] - 1)
    if _COLLECTOR["holds"] == 0 and _COLLECTOR["was_enabled"]:
        from qtpy.QtCore import QTimer

        gc.enable()
        QTimer.singleShot(1, gc.collect)


_ADDING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer list -> views open


def adding_to(viewer) -> bool:
    """True while results go into ``viewer`` with their views deferred (the adder selects
    a layer at its end; a selection before would build the new layers' views at once)."""
    return _ADDING.get(_unproxied(viewer).layers, 0) > 0


class DeferredViews:
    """Build the vispy visual and the controls of the layers an adder inserts later,
    each in an event-loop turn of its own (:meth:`build_next`).

    A layer is inserted (:meth:`inserting`) with napari's two callbacks that build them
    blocked for that one insertion (the public ``EventEmitter.block``), so that a layer
    someone else adds meanwhile is built as usual. napari's canvas already waits for
    layers without a visual (its scene update is skipped while any is missing). What
    needs a layer's views at once builds them first, so that a click or an Undo while
    results go in finds them: a layer selected (napari shows its controls; that layer's
    views are built) and a layer about to be removed (napari removes its visual and
    controls; every pending view is built). napari calls a plugin's callbacks after its
    own whatever ``position`` says, so these rely on napari's order of events: a layer
    made the active one emits ``selection.events.active`` (built here) before
    ``changed`` (where napari looks up the controls), and napari removes views on
    ``removed``, after ``removing`` (built here); the tests check both.
    :meth:`close` builds what is left and disconnects.
    """

    def __init__(self, viewer):
        viewer = _unproxied(viewer)
        self._layers = weakref.ref(viewer.layers)
        self._pending: list[tuple[str, weakref.ref]] = []
        self._scene_stale = False  # visuals were built with the scene update held
        qt_viewer = getattr(getattr(viewer, "window", None), "_qt_viewer", None)
        # weakly: an adder cut short (the window closed) must not keep the window alive
        self._qt_viewer = weakref.ref(qt_viewer) if qt_viewer is not None else lambda: None
        self._names = [name for name in ("visual", "controls") if self._part(name)]
        self._hooks = []
        self._open = True
        _ADDING[viewer.layers] = _ADDING.get(viewer.layers, 0) + 1
        if self._names:
            selection = viewer.layers.selection.events
            for emitter, hook in ((viewer.layers.events.removing, self.build_all),
                                  (selection.changed, self._build_selected),
                                  (selection.active, self._build_selected)):
                emitter.connect(hook)
                self._hooks.append((emitter, hook))

    def _part(self, name: str):
        """(napari's callback blocked on insertion, what builds the view later, where
        napari keeps the views), or None where one of them is missing."""
        qt_viewer = self._qt_viewer()
        if name == "visual":
            owner = qt_viewer
            blocked, build = (getattr(owner, "_on_add_layer_change", None),
                              getattr(owner, "_add_layer", None))
            built = getattr(getattr(owner, "canvas", None), "layer_to_visual", None)
        else:
            owner = getattr(qt_viewer, "controls", None)
            blocked = getattr(owner, "_add", None)
            build = (lambda layer: blocked(types.SimpleNamespace(value=layer))) if blocked else None
            built = getattr(owner, "widgets", None)
        if callable(blocked) and callable(build) and isinstance(built, dict):
            return blocked, build, built
        return None

    @contextlib.contextmanager
    def inserting(self):
        """Insert layers inside this block without their views (for :meth:`build_next`).

        Every layer inserted inside it is remembered as it goes in (a callback on the
        insertion, after napari's), so that a layer selected right after its insertion
        (napari does that where it cannot be told not to) or inserted by another
        callback meanwhile is built as well."""
        layers = self._layers()
        inserted = layers.events.inserted if layers is not None else None
        parts = [self._part(name) for name in self._names] if inserted is not None else []
        blocked = [part[0] for part in parts if part is not None]
        for callback in blocked:
            inserted.block(callback)
        if blocked:
            inserted.connect(self._remember)
        try:
            yield
        finally:
            for callback in blocked:
                inserted.unblock(callback)
            if blocked:
                inserted.disconnect(self._remember)

    def _remember(self, event) -> None:
        layer_ref = weakref.ref(event.value)
        for name in self._names:
            self._pending.append((name, layer_ref))

    def __bool__(self) -> bool:
        return bool(self._pending)

    @property
    def defers(self) -> bool:
        """False where napari's private callbacks were not found (nothing deferred)."""
        return bool(self._names)

    def pending_layers(self) -> int:
        """How many layers still wait for a view."""
        return len({id(layer_ref) for _name, layer_ref in self._pending})

    def build_next(self) -> None:
        """Build one pending view (a visual or a layer's controls)."""
        if self._pending:
            self._build(*self._pending.pop(0))

    def build_all(self, _event=None) -> None:
        """Build every pending view; one that fails does not stop the others (the first
        error is raised at the end)."""
        self._build_each(self._pending)
        self._pending = []

    def _build_each(self, items: list) -> None:
        first_error = None
        for item in list(items):
            try:
                self._build(*item)
            except Exception as exc:  # noqa: BLE001 - raised below, after the others
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def _build_selected(self, _event=None) -> None:
        """The selection changed (napari's layer list emits that on every insertion, too):
        build the views of the selected layers, which napari's controls look up."""
        layers = self._layers()
        selected = set(layers.selection) if layers is not None else set()
        now = [item for item in self._pending if item[1]() in selected]
        self._pending = [item for item in self._pending if item not in now]
        self._build_each(now)

    def _build(self, name: str, layer_ref: weakref.ref) -> None:
        layer, layers, part = layer_ref(), self._layers(), self._part(name)
        # only for a layer still in the list whose view napari did not build itself
        if layer is None or layers is None or part is None or layer not in layers \
                or layer in part[2]:
            return
        canvas: Any = getattr(self._qt_viewer(), "canvas", None)
        held = getattr(canvas, "_pause_scene_graph", None) if name == "visual" else None
        if isinstance(held, bool):  # napari updates the canvas's scene after each visual
            canvas._pause_scene_graph = True  # while none is missing (the last one):
            self._scene_stale = True  # 30-120 ms, done in a turn of its own (update_scene)
        try:
            part[1](layer)
        finally:
            if isinstance(held, bool):
                canvas._pause_scene_graph = held

    def update_scene(self) -> None:
        """The canvas's one scene update after the visuals built here (napari's own, as
        after a layer added; the layer list's batch would collect garbage first)."""
        update = getattr(getattr(self._qt_viewer(), "canvas", None), "_update_scenegraph", None)
        if self._scene_stale and callable(update):
            self._scene_stale = False
            update()  # napari skips it while its scene updates are paused or a visual missing

    def close(self) -> Exception | None:
        """Build what is left (the window is alive), update the canvas's scene once and
        disconnect; returns the first error of a view that could not be built."""
        error = None
        try:
            if self._layers() is not None:
                try:
                    self.build_all()
                except RuntimeError:  # the window was closed meanwhile
                    return None
                except Exception as exc:  # noqa: BLE001 - the caller says so
                    error = exc
                with contextlib.suppress(RuntimeError):
                    self.update_scene()
            return error
        finally:
            self._pending = []
            layers = self._layers()
            if self._open and layers is not None:
                _ADDING[layers] = max(0, _ADDING.get(layers, 1) - 1)
            self._open = False
            for emitter, hook in self._hooks:
                with contextlib.suppress(RuntimeError, ValueError):
                    emitter.disconnect(hook)
            self._hooks = []

