"""The "Chains and mosaics" dock widget: join files of one field, place fields as a mosaic."""

from __future__ import annotations

import os

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    Select,
    SpinBox,
)

from ..chains import chain_layer_data, new_offers, offer_text, same_field_groups
from ..mosaic_layers import mosaic_from_layers, mosaic_ids, mosaic_tiles, nudge_tile, place_layers
from ._common import acquisition_choices


def _notify(kind: str, message: str) -> None:
    from napari.utils.notifications import show_error, show_info

    (show_error if kind == "error" else show_info)(message)


class ChainsMosaicWidget(Container):
    """Offers "one acquisition (same field)" for opened files whose headers say so, and
    places opened files as a mosaic by stage position (layers translated, never
    resampled), with nudges per tile and the stitched OME-TIFF export."""

    def __init__(self, viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        self.groups = ComboBox(label="same field", choices=self._group_choices, nullable=True)
        self.join_button = PushButton(text="One acquisition (same field)")
        self.files = Select(label="tiles", choices=self._file_choices)
        self.place_button = PushButton(text="Place as mosaic (stage positions)")
        self.mosaic = ComboBox(label="mosaic", choices=self._mosaic_choices, nullable=True)
        self.tile = SpinBox(label="tile", min=0, max=999)
        self.dy = FloatSpinBox(label="nudge y (µm)", min=-1e4, max=1e4, step=0.1)
        self.dx = FloatSpinBox(label="nudge x (µm)", min=-1e4, max=1e4, step=0.1)
        self.nudge_button = PushButton(text="Nudge tile")
        self.folder = FileEdit(label="export to", mode="d")
        self.export_button = PushButton(text="Export stitched OME-TIFF per mass")
        self.status = Label(value="")
        self.extend([self.groups, self.join_button, self.files, self.place_button,
                     self.mosaic, self.tile, self.dy, self.dx, self.nudge_button,
                     self.folder, self.export_button, self.status])
        self.join_button.changed.connect(self.join)
        self.place_button.changed.connect(self.place)
        self.nudge_button.changed.connect(self.nudge)
        self.export_button.changed.connect(self.export)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        self.refresh()

    # -- choices --------------------------------------------------------------------------
    def _group_choices(self, _widget=None):
        return [(offer_text(group), tuple(group)) for group in same_field_groups(self._viewer)]

    def _file_choices(self, _widget=None):
        return acquisition_choices(self._viewer)

    def _mosaic_choices(self, _widget=None):
        return [(f"mosaic {k + 1} ({len(mosaic_tiles(self._viewer, m))} tiles)", m)
                for k, m in enumerate(mosaic_ids(self._viewer))]

    def refresh(self, _event=None) -> None:
        """Update the lists; say so once when newly opened files are one field (not again
        when the .im reader has offered them already)."""
        try:
            for widget in (self.groups, self.files, self.mosaic):
                widget.reset_choices()
            if self.groups.value is None and self.groups.choices:
                self.groups.value = self.groups.choices[-1]
        except RuntimeError:  # the Qt side is gone (the viewer is closing)
            return
        for group in new_offers(self._viewer):
            self._say("info", f"{offer_text(group)}? The headers say these files "
                              f"are one field: 'One acquisition (same field)' joins them.")
        if self.groups.value and not self.status.value:
            self.status.value = f"{offer_text(list(self.groups.value))}?"

    def _say(self, kind: str, message: str) -> None:
        self.status.value = message if len(message) < 200 else message[:197] + "..."
        _notify(kind, message)

    # -- actions --------------------------------------------------------------------------
    def join(self, _value=None) -> None:
        """Add the layers of the chosen group joined into one acquisition."""
        group = self.groups.value
        if not group:
            self._say("error", "No opened files are one field (same stage position, masses, "
                               "raster and pixel size).")
            return
        try:
            layers = chain_layer_data(list(group))
        except ValueError as exc:
            self._say("error", str(exc))
            return
        for data, kwargs, _ in layers:
            self._viewer.add_image(data, **kwargs)
        self._say("info", f"Joined {len(group)} files into one acquisition "
                          f"({layers[0][1]['name'].rsplit(' · ', 1)[-1]}).")

    def place(self, _value=None) -> None:
        """Translate the layers of the chosen files (all when none is chosen) to their
        places by stage position."""
        chosen = list(self.files.value) or [value for _, value in self._file_choices()]
        if not chosen:
            self._say("error", "Open the .im files of the tiles first.")
            return
        try:
            placed = place_layers(self._viewer, chosen)
        except ValueError as exc:
            self._say("error", str(exc))
            return
        self.mosaic.reset_choices()
        self.mosaic.value = placed.mosaic_id
        self._say("info", f"Placed {len(placed)} tiles by stage position "
                          f"({placed.shape[1]} x {placed.shape[0]} px; whole-pixel rounding "
                          f"up to {placed.rounding_px:.2f} px in the export).")

    def nudge(self, _value=None) -> None:
        """Move one tile by (dy, dx) µm, kept as its nudge."""
        if self.mosaic.value is None:
            self._say("error", "Place files as a mosaic first.")
            return
        try:
            nudge_tile(self._viewer, self.mosaic.value, self.tile.value,
                       (self.dy.value, self.dx.value))
        except ValueError as exc:
            self._say("error", str(exc))

    def export(self, _value=None) -> None:
        """Write the stitched OME-TIFF of every mass into the chosen folder."""
        from ...export.mosaic import write_mosaic_tiffs

        if self.mosaic.value is None:
            self._say("error", "Place files as a mosaic first.")
            return
        folder = str(self.folder.value or "")
        try:
            placed = mosaic_from_layers(self._viewer, self.mosaic.value)
            written = write_mosaic_tiffs(placed, folder if os.path.isdir(folder) else None)
        except (ValueError, OSError) as exc:
            self._say("error", str(exc))
            return
        self._say("info", f"Wrote {len(written)} stitched OME-TIFFs to "
                          f"{os.path.dirname(next(iter(written.values())))}.")
