"""What each step's results replaced in the viewer, per file, so the File tab can undo it.

Qt-free and free of the tabs: :class:`~._common.LayerAdder` records into it and the
File tab (:mod:`.session`) reverts from it.
"""

from __future__ import annotations

import weakref


class UndoHistory:
    """What each step's results replaced, per file, so the last step can be undone.

    :class:`~._common.LayerAdder` opens one :class:`UndoStep` per step result and tells
    it which layers it added and which it changed (their previous data, metadata and
    visibility). Only the last ``MAX_STEPS`` steps of a file are kept, and only the most
    recent step that replaced data keeps the arrays it replaced (see ``_replacing``).
    """

    MAX_STEPS = 5
    _of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self):
        self._steps: dict[str, list[UndoStep]] = {}

    @classmethod
    def of(cls, viewer) -> UndoHistory:
        """The history of ``viewer`` (made on first use)."""
        if viewer not in cls._of:
            cls._of[viewer] = cls()
        return cls._of[viewer]

    def begin(self, acquisition_id: str, what: str) -> UndoStep:
        """A new step of the file ``acquisition_id`` (``what``: its kind of result)."""
        step = UndoStep(what, history=self)
        steps = self._steps.setdefault(acquisition_id, [])
        steps.append(step)
        del steps[:-self.MAX_STEPS]
        return step

    def _replacing(self, newest: UndoStep) -> None:
        """``newest`` keeps replaced arrays: it becomes the only step that does.

        Replaced arrays are what Undo costs in memory (a 100-frame, 7-mass 512² stack is
        0.7 GB a step); steps that only added layers cost nothing. So Undo goes back
        through the last step that replaced data and no further: older steps of every
        file that replaced data, and the steps before them, are forgotten.
        """
        for steps in self._steps.values():
            heavy = [k for k, step in enumerate(steps)
                     if step is not newest and step.replaced]
            if heavy:
                del steps[:heavy[-1] + 1]

    def can_undo(self, acquisition_id: str) -> str | None:
        """What the last step of the file made ("aligned", ...), or None."""
        steps = self._steps.get(acquisition_id)
        return steps[-1].what if steps else None

    def undo(self, viewer, acquisition_id: str) -> str | None:
        """Undo the file's last step; return what it had made (None: nothing to undo)."""
        steps = self._steps.get(acquisition_id)
        if not steps:
            return None
        step = steps.pop()
        step.revert(viewer)
        return step.what

    def forget(self, acquisition_id: str) -> None:
        self._steps.pop(acquisition_id, None)


class UndoStep:
    """The layers one step's results added, and what they replaced in the others."""

    def __init__(self, what: str, history: UndoHistory | None = None):
        self.what = what
        self.replaced = False  # holds arrays that no layer holds any more
        # a weak reference: a cycle step -> history -> step would keep replaced arrays
        # alive until Python's cycle collector ran (measured: +420 MiB over 20 runs)
        self._history = None if history is None else weakref.ref(history)
        self._added: list = []
        # Layers themselves, not weak references: napari's layer list does not keep the
        # objects a weak reference would find (measured: every one was dead at undo).
        self._changed: list = []  # (layer, data, metadata, visible, contrast limits)
        self._removed: list = []  # (layer, its place in the list) of layers it removed
        self._seen: set[int] = set()

    def added(self, layer) -> None:
        self._added.append(layer)

    def removed(self, layer, index: int) -> None:
        """``layer`` (at ``index`` in the layer list) is removed by the step: Undo puts
        it back (small layers only: it is kept whole)."""
        self._removed.append((layer, index))

    def remember(self, layer) -> None:
        """Keep ``layer``'s data, metadata and visibility before the step replaces them."""
        if id(layer) in self._seen:
            return
        self._seen.add(id(layer))
        limits = getattr(layer, "contrast_limits", None)
        self._changed.append((layer, layer.data, dict(layer.metadata),
                              layer.visible, None if limits is None else list(limits)))
        if not self.replaced:
            self.replaced = True
            history = None if self._history is None else self._history()
            if history is not None:
                history._replacing(self)

    def remember_visibility(self, layer) -> None:
        """Keep only whether ``layer`` was shown (the step hides it, keeps its data)."""
        if id(layer) in self._seen:
            return
        self._seen.add(id(layer))
        self._changed.append((layer, None, None, layer.visible, None))

    def revert(self, viewer) -> None:
        for layer in self._added:
            if layer in viewer.layers:
                viewer.layers.remove(layer)
        for layer, index in reversed(self._removed):
            if layer not in viewer.layers:
                viewer.layers.insert(min(index, len(viewer.layers)), layer)
        for layer, data, metadata, visible, limits in reversed(self._changed):
            if layer not in viewer.layers:
                continue
            if data is not None and layer.data is not data:
                layer.data = data
            if metadata is not None:
                layer.metadata = metadata
            if limits is not None:
                layer.contrast_limits = limits
            layer.visible = visible
