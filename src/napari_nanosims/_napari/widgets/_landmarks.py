"""The Correlate tab's landmark pairs: two Points layers in µm, one on the NanoSIMS
reference and one on the external image, whose points carry their pair's number (the
``pair`` feature, shown as text). Pairs are matched by number, not by order, so that
napari's own point editing (move, delete one point) keeps them straight."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from ..correlate_layers import (
    IMAGE_KEY,
    LANDMARK_KEY,
    PAIR,
    landmark_pairs,
    next_pair_number,
)

FIXED, MOVING = "fixed", "moving"
COLOURS = {FIXED: "cyan", MOVING: "magenta"}
#: Metadata key: the file the pairs belong to (not a FILE_KEYS key for the image's
#: layer, which must not move with the file's layers).
FILE_KEY = "nanosims_landmarks_file"


class Landmarks:
    """The landmark layers of the tab's chosen file and image (found by their metadata,
    made on demand). ``tab`` is the :class:`~.correlate.CorrelateWidget`; it is told of
    every change (``tab._update_pairs``) and, while picking, the next click is guided to
    the other image."""

    def __init__(self, tab):
        self.tab = tab
        self._quiet = False
        self._connected: set[int] = set()

    def layer(self, side: str, create: bool = False):
        """The Points layer of ``side`` (FIXED or MOVING), made when ``create``."""
        tab = self.tab
        image, file = tab.image.value, tab.file.value
        if image is None or file is None:
            return None
        for layer in tab._viewer.layers:
            metadata = layer.metadata or {}
            if (metadata.get(LANDMARK_KEY) == side and metadata.get(IMAGE_KEY) ==
                    image.unique_id and metadata.get(FILE_KEY) == file):
                self._watch(layer)
                return layer
        if not create:
            return None
        shape, pixel, translate = tab._grid()
        size = max(shape) * pixel / 50  # µm, on both images alike
        metadata = {LANDMARK_KEY: side, IMAGE_KEY: image.unique_id, FILE_KEY: file}
        if side == FIXED:  # shown, hidden and moved with the file's layers
            metadata["nanosims_file"] = file
        colour = COLOURS[side]
        layer = tab._viewer.add_points(
            np.empty((0, 2)), ndim=2, name="landmarks on " + (
                "NanoSIMS" if side == FIXED else image.name), metadata=metadata,
            features=pd.DataFrame({PAIR: np.empty(0, dtype=int)}), size=size,
            face_color=colour, border_color="white", units=("µm", "µm"),
            translate=tuple(translate) if side == FIXED else (0.0, 0.0),
            text={"string": "{" + PAIR + "}", "color": colour, "size": 12,
                  "anchor": "upper_left"})
        self._watch(layer)
        return layer

    def layers(self) -> list:
        return [layer for layer in (self.layer(FIXED), self.layer(MOVING))
                if layer is not None]

    def _watch(self, layer) -> None:
        if id(layer) not in self._connected:
            self._connected.add(id(layer))
            layer.events.data.connect(self._changed)

    @contextlib.contextmanager
    def quietly(self):
        """Several edits, one update at the end (by the caller)."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _changed(self, event=None) -> None:
        tab = self.tab
        if self._quiet or tab._closed:
            return
        action = getattr(getattr(event, "action", None), "value", "changed")
        if action in ("adding", "removing", "changing"):
            return
        tab._update_pairs()
        source = getattr(event, "source", None)
        if action == "added" and tab._picking and source is not None:
            from qtpy.QtCore import QTimer

            # after napari's own handling of the click: then guide to the other image
            QTimer.singleShot(0, lambda: self.guide(source))

    def guide(self, added) -> None:
        """Select the other landmark layer in add mode: pairs are clicked in turn."""
        tab = self.tab
        if tab._closed or not tab._picking:
            return
        side = (added.metadata or {}).get(LANDMARK_KEY)
        other = self.layer(MOVING if side == FIXED else FIXED)
        if other is None:
            return
        tab._viewer.layers.selection.active = other
        other.mode = "add"
        number = int(other.feature_defaults[PAIR].iloc[0])
        where = "NanoSIMS" if other.metadata[LANDMARK_KEY] == FIXED else tab.image.value.name
        tab.summary.value = f"Pair {number}: click the feature on {where}."

    def pairs(self) -> dict:
        """pair number -> (NanoSIMS (y, x) µm or None, image (y, x) µm or None)."""
        return landmark_pairs(self.layer(FIXED), self.layer(MOVING))

    def number_new_points(self, pairs: dict) -> None:
        """The next point on each side completes the first pair missing it, else
        starts a new pair."""
        for side, index in ((FIXED, 0), (MOVING, 1)):
            layer = self.layer(side)
            if layer is not None:
                layer.feature_defaults = {PAIR: next_pair_number(pairs, index)}

    def add_pair(self, nanosims_um, image_um) -> int:
        """Add one pair ((y, x) µm on the reference and on the image) as two clicks
        would; returns its number."""
        fixed, moving = self.layer(FIXED, True), self.layer(MOVING, True)
        number = next_pair_number(self.pairs(), 0)
        fixed.add(np.asarray(nanosims_um, dtype=float)[None])
        moving.add(np.asarray(image_um, dtype=float)[None])
        return number

    def delete(self, numbers=None) -> list[int]:
        """Delete pairs: ``numbers``, else those of the points selected in the active
        landmark layer (napari selects each point it adds: only the layer being edited
        counts), else the last pair."""
        layers = self.layers()
        if numbers is None:
            active = self.tab._viewer.layers.selection.active
            numbers = {int(active.features[PAIR].iloc[i]) for i in active.selected_data} \
                if any(active is layer for layer in layers) else set()
            pairs = self.pairs()
            numbers = numbers or ({max(pairs)} if pairs else set())
        numbers = sorted(int(n) for n in numbers)
        with self.quietly():
            for layer in layers:
                doomed = {i for i, n in enumerate(layer.features[PAIR]) if int(n) in numbers}
                if doomed:
                    layer.selected_data = doomed
                    layer.remove_selected()
        self.tab._update_pairs()
        return numbers

    def set_pairs(self, landmarks) -> None:
        """Replace the pairs by (n, 2, 2) landmarks (numbered 1..n)."""
        numbers = np.arange(1, len(landmarks) + 1)
        with self.quietly():
            for side, column in ((FIXED, 0), (MOVING, 1)):
                layer = self.layer(side, True)
                layer.data = np.asarray(landmarks)[:, column]
                layer.features = pd.DataFrame({PAIR: numbers})

    def rescale_image_points(self, factor: float) -> None:
        """The image's points follow a new pixel size (they stay on its features)."""
        moving = self.layer(MOVING)
        if moving is not None and len(moving.data):
            with self.quietly():
                moving.data = np.asarray(moving.data) * factor

    def set_mode(self, mode: str) -> None:
        for layer in self.layers():
            layer.mode = mode
