"""Which opened files the canvas shows: one at a time (the default) or side by side, names
that tell same-named files apart, and a shown layer selected after every change."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

from ..layers import NAME_SEPARATOR
from ..lookups import file_paths, folder_tags, layer_file, nanosims_info, top_visible_layer
from ._scene import adding_to

__all__ = ["FileView", "SHOW_ONE", "SHOW_GRID", "SHOW_CHOICES"]

SHOW_ONE, SHOW_GRID = "one file", "side by side"
SHOW_CHOICES = (SHOW_ONE, SHOW_GRID)
GRID_GAP = 0.05  # of the widest file's width, between files side by side
_NAPARI_NUMBER = re.compile(r" \[\d+\]$")  # what napari appends to a name already taken


class FileView:
    """One per viewer (:meth:`of`): keeps the canvas showing files the user can tell apart.

    - **one file** (default): the layers of the active file (that of the selected layer,
      or the file chosen in a tab) keep their visibility; those of every other file are
      hidden, and get their visibility back when their file is shown again.
    - **side by side**: every file is visible, each moved right of the previous one
      (``translate`` in µm), in the order the files were opened.

    Files that share a name get their folders in their layer names and in
    ``metadata['nanosims']['file_tag']`` (the full folder is ``'folder'``). After layers
    are added, a visible layer is selected, so that the layer controls act on what is
    shown. Tabs follow the shown file through :meth:`listen`.
    """

    _views: dict[int, tuple[weakref.ref, FileView]] = {}

    @classmethod
    def of(cls, viewer) -> FileView:
        """The viewer's FileView, made (and connected) on first use."""
        cls._views = {key: value for key, value in cls._views.items()
                      if value[0]() is not None}
        found = cls._views.get(id(viewer))
        if found is None or found[0]() is not viewer:
            found = (weakref.ref(viewer), cls(viewer))
            cls._views[id(viewer)] = found
        return found[1]

    def __init__(self, viewer):
        self._viewer = weakref.ref(viewer)
        self.mode = SHOW_ONE
        self.shown: str | None = None
        # (weak reference to the layer, its visibility); typed as a callable returning Any
        # so that ``reference() is layer`` does not make mypy think ``layer`` may be None
        self._hidden: dict[int, tuple[Callable[[], Any], bool]] = {}
        self._listeners: list[weakref.WeakMethod] = []
        self._select_scheduled = False
        layers = viewer.layers
        layers.events.inserted.connect(self._inserted)
        layers.events.removed.connect(self._removed)
        layers.selection.events.active.connect(self._active_changed)
        self._retag()
        files = list(file_paths(viewer))
        active = layer_file(layers.selection.active)
        if active is not None or files:
            self.show(active if active is not None else files[-1])

    # -- listeners ------------------------------------------------------------------------
    def listen(self, method: Callable[[str | None, str], None]) -> None:
        """Call the bound ``method(shown_file_id, mode)`` whenever either changes (weakly)."""
        self._listeners.append(weakref.WeakMethod(method))

    def _notify(self) -> None:
        alive = []
        for reference in self._listeners:
            method = reference()
            if method is not None:
                alive.append(reference)
                method(self.shown, self.mode)
        self._listeners = alive

    # -- what is shown --------------------------------------------------------------------
    def show(self, acquisition_id: str | None, *, select: bool = True) -> None:
        """Show ``acquisition_id`` (hiding the other files in 'one file' mode)."""
        viewer = self._viewer()
        if viewer is None:
            return
        changed = acquisition_id != self.shown
        self.shown = acquisition_id
        if self.mode == SHOW_ONE:
            self._apply_visibility(viewer)
        if select:
            self.select_shown()
        if changed:
            self._notify()

    def set_mode(self, mode: str) -> None:
        """'one file' or 'side by side'."""
        if mode not in SHOW_CHOICES:
            raise ValueError(f"show must be one of {', '.join(SHOW_CHOICES)}, not {mode!r}")
        viewer = self._viewer()
        if viewer is None or mode == self.mode:
            return
        self.mode = mode
        if mode == SHOW_GRID:
            self._restore_all()
        else:
            self._apply_visibility(viewer)
        self._place(viewer)
        viewer.reset_view()
        self._notify()

    def _apply_visibility(self, viewer) -> None:
        for layer in list(viewer.layers):
            owner = layer_file(layer)
            if owner is None:
                continue
            key = id(layer)
            if owner == self.shown:
                stored = self._hidden.pop(key, None)
                if stored is not None and stored[0]() is layer:
                    layer.visible = stored[1]
            else:
                stored = self._hidden.get(key)
                if stored is None or stored[0]() is not layer or layer.visible:
                    self._hidden[key] = (weakref.ref(layer), bool(layer.visible))
                layer.visible = False

    def _restore_all(self) -> None:
        for reference, visible in list(self._hidden.values()):
            layer = reference()
            if layer is not None:
                layer.visible = visible
        self._hidden.clear()

    def _place(self, viewer) -> None:
        """Side by side: each file right of the previous one; else all at the origin."""
        offsets: dict[str, float] = {}
        if self.mode == SHOW_GRID:
            widths = {}
            for layer in viewer.layers:
                info = nanosims_info(layer)
                if info and info["acquisition_id"] not in widths and layer.ndim >= 2:
                    widths[info["acquisition_id"]] = (layer.data.shape[-1]
                                                      * float(layer.scale[-1]))
            gap = GRID_GAP * max(widths.values(), default=0.0)
            position = 0.0
            for acquisition_id in file_paths(viewer):
                offsets[acquisition_id] = position
                position += widths.get(acquisition_id, 0.0) + gap
        for layer in viewer.layers:
            owner = layer_file(layer)
            if owner is None:
                continue
            translate = list(layer.translate)
            offset = offsets.get(owner, 0.0)
            if translate[-1] != offset or any(translate[:-1]):
                layer.translate = [0.0] * (len(translate) - 1) + [offset]

    # -- events ---------------------------------------------------------------------------
    def _inserted(self, event) -> None:
        viewer = self._viewer()
        layer = getattr(event, "value", None)
        owner = layer_file(layer)
        if viewer is None or owner is None:
            return
        if (nanosims_info(layer) or {}).get("kind") == "raw":
            self._retag()
        if self.mode == SHOW_GRID:
            self._place(viewer)
        elif self.shown is None:
            self.shown = owner
        self._schedule_select()

    def _removed(self, event) -> None:
        viewer = self._viewer()
        layer = getattr(event, "value", None)
        self._hidden.pop(id(layer), None)
        if viewer is None:
            return
        files = list(file_paths(viewer))
        self._retag()
        if self.mode == SHOW_GRID:
            self._place(viewer)
        if self.shown is not None and not any(layer_file(other) == self.shown
                                              for other in viewer.layers):
            active = layer_file(viewer.layers.selection.active)
            self.show(active if active in files else (files[-1] if files else None))

    def _active_changed(self, event) -> None:
        owner = layer_file(getattr(event, "value", None))
        if owner is not None and owner != self.shown:
            self.show(owner, select=False)

    def _schedule_select(self) -> None:
        """Select a shown layer once the layers being added are in (next event-loop turn):
        napari selects each new layer, often a hidden one (SE, sums, coverage)."""
        if self._select_scheduled:
            return
        from qtpy.QtCore import QTimer

        self._select_scheduled = True
        QTimer.singleShot(0, self._select_after_insert)

    def _select_after_insert(self) -> None:
        self._select_scheduled = False
        viewer = self._viewer()
        if viewer is None:
            return
        active = viewer.layers.selection.active
        if active is not None and (active.visible or layer_file(active) is None):
            return
        if adding_to(viewer):  # the adder selects when every result is in: a selection
            return  # now would build the new layers' views (DeferredViews) at once
        self.select_shown(layer_file(active) or self.shown)

    def select_shown(self, acquisition_id: str | None = None) -> None:
        """Select the top-most visible layer of ``acquisition_id`` (default: the shown file)
        unless the selected layer is already a visible one of that file."""
        viewer = self._viewer()
        acquisition_id = acquisition_id or self.shown
        if viewer is None or acquisition_id is None:
            return
        active = viewer.layers.selection.active
        if active is not None and active.visible and layer_file(active) == acquisition_id:
            return
        layer = top_visible_layer(viewer, acquisition_id)
        if layer is not None:
            viewer.layers.selection.active = layer

    # -- names ----------------------------------------------------------------------------
    def _retag(self) -> None:
        """Give files that share a name their folders, in layer names and metadata."""
        viewer = self._viewer()
        if viewer is None:
            return
        tags = folder_tags(file_paths(viewer))
        old_tags: dict[str, str] = {}
        for layer in viewer.layers:
            info = nanosims_info(layer)
            if info is not None and info["acquisition_id"] in tags:
                old_tags.setdefault(info["acquisition_id"], info.get("file_tag", ""))
        for layer in list(viewer.layers):
            owner = layer_file(layer)
            if owner is None:  # a foreign layer has no tag
                continue
            info = nanosims_info(layer)
            tag = tags.get(owner)
            old = (info or {}).get("file_tag") or old_tags.get(owner)
            if tag is None or not old:
                continue
            if info is not None:
                info["file_tag"] = tag
            name = _NAPARI_NUMBER.sub("", layer.name)
            suffix = NAME_SEPARATOR + old
            if not name.endswith(suffix):
                continue  # renamed by the user: leave it
            new = name[:-len(suffix)] + NAME_SEPARATOR + tag
            if new != layer.name and new not in viewer.layers:
                layer.name = new
