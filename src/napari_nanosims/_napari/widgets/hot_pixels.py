"""The "Remove hot pixels" dock widget: the remove_hot_pixels step on an opened file."""

from __future__ import annotations

import warnings

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, Label, PushButton

from ...io.lazy import mass_stack
from ...processing._frames import FrameStack
from ...processing.hot_pixels.hot_pixels import iter_infer_hot_pixels
from ...steps.frames import REMOVE_HOT_PIXELS, effective_hot_pixel_parameters
from ...steps.parameters import HOT_PIXEL_PARAMETERS
from ._base import FileWidget
from ._common import (
    KIND_CLEANED,
    LayerAdder,
    acquisition_from_layers,
    channel_layers,
    layer_state,
    nanosims_info,
    results_for_layers,
)
from ._controls import control_for, control_value, remembered, save_parameters, set_default

SECTION = "remove_hot_pixels"
OVERLAY_KIND = "hot pixels"


class HotPixelWidget(FileWidget):
    """Remove correlated-noise hot pixels from the ion channels of one file.

    The controls are the parameters of the ``remove_hot_pixels`` step (their defaults,
    bounds and help come from its definition). A live count shows how many pixels the
    current parameters flag; "show flagged pixels" overlays them. Run adds
    ``"<label> · cleaned · <file>"`` layers; the originals are never modified.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, "Remove hot pixels")
        values = remembered(HOT_PIXEL_PARAMETERS, SECTION)
        self.controls = {p.name: control_for(p, values[p.name]) for p in HOT_PIXEL_PARAMETERS}
        for name, control in self.controls.items():
            setattr(self, name, control)
        self.note = Label(label="", value="")
        self.note.native.setWordWrap(True)
        self.show_points = CheckBox(label="show flagged pixels", value=False)
        self.count_label = Label(label="flagged", value="-")
        self.count_label.native.setWordWrap(True)
        self.reset_button = PushButton(text="Reset to defaults")
        self.extend([self.file, *self.controls.values(), self.note, self.show_points,
                     self.count_label, self.reset_button, self.run_button,
                     self.cancel_button, self.progress])
        self._preview = None
        self._preview_again = False
        self._previewed_id = None
        self.reset_button.changed.connect(self.reset_defaults)
        for control in self.controls.values():
            control.changed.connect(self._parameters_changed)
        self.file.changed.connect(self._file_changed)
        self.show_points.changed.connect(self._parameters_changed)
        self._connect()

    # -- inputs ---------------------------------------------------------------------
    def _files_refreshed(self, previous) -> None:
        if self.file.value == previous:  # else _file_changed has done it
            self._update_note()

    def _file_changed(self, _value=None) -> None:
        self._update_note()
        if self.file.value != self._previewed_id:  # not again for every layer added
            self.update_preview()

    def parameters(self) -> dict:
        """Current parameters as keyword arguments of the step."""
        return {p.name: control_value(p, self.controls[p.name]) for p in HOT_PIXEL_PARAMETERS}

    def reset_defaults(self, _value=None) -> None:
        """Put every control back to the step's defaults (and remember that)."""
        for parameter in HOT_PIXEL_PARAMETERS:
            set_default(parameter, self.controls[parameter.name])
        self._parameters_changed()

    def _acquisition(self):
        acquisition_id = self.file.value
        if acquisition_id is None:
            return None
        return acquisition_from_layers(self._viewer, acquisition_id)

    def _update_note(self) -> None:
        """Say what the policy does for this file (recomputed whenever the file changes)."""
        acquisition = self._acquisition()
        if acquisition is None:
            self.note.value = ""
            return
        n_ions, n_frames = len(acquisition.ion_channels), acquisition.n_frames
        notes = [f"{n_ions} ion channel(s), {n_frames} frame(s)"]
        if self.parameters()["num_outliers"] > n_ions:
            notes.append(f"num_outliers is lowered to {n_ions}")
        if n_frames and 1.0 / n_frames >= self.parameters()["max_repeat_fraction"]:
            notes.append(f"nothing can be hot unless max_repeat_fraction > {1 / n_frames:.3g}")
        self.note.value = "; ".join(notes)

    # -- live count -----------------------------------------------------------------
    def _parameters_changed(self, _value=None) -> None:
        save_parameters(SECTION, {k: v for k, v in self.parameters().items()})
        self._update_note()
        self.update_preview()

    def update_preview(self):
        """Count flagged pixels per frame with the current parameters, in a worker."""
        # superqt's create_worker: napari's registers every worker with the window for good
        from superqt.utils import create_worker

        acquisition = self._acquisition()
        if acquisition is None or self._closed:
            self.count_label.value = "-"
            return None
        if self._preview is not None:
            self._preview_again = True
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = effective_hot_pixel_parameters(acquisition, self.parameters())
        self._previewed_id = acquisition.acquisition_id
        ions = [c.index for c in acquisition.ion_channels]
        stack = FrameStack([mass_stack(acquisition.counts, k) for k in ions])
        acquisition_id = acquisition.acquisition_id

        def count():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mask, _ = yield from iter_infer_hot_pixels(stack, keep_filtered="none",
                                                           **params)
            return mask

        worker = create_worker(count, _start_thread=False,
                               _connect={"errored": self._preview_failed})
        worker.returned.connect(lambda mask, a=acquisition_id: self._show_preview(a, mask))
        worker.finished.connect(self._preview_finished)
        self._preview = worker
        worker.start()
        return worker

    def _preview_failed(self, exc) -> None:
        if not self._closed:
            self.count_label.value = f"cannot count: {exc}"

    def _preview_finished(self) -> None:
        self._preview = None
        if self._preview_again and not self._closed:
            self._preview_again = False
            self.update_preview()

    def _show_preview(self, acquisition_id, mask) -> None:
        if self._closed or acquisition_id != self.file.value:
            return
        per_frame = mask.reshape(mask.shape[0], -1).sum(axis=1)
        shown = ", ".join(str(v) for v in per_frame[:12]) + (" ..." if per_frame.size > 12 else "")
        self.count_label.value = f"{int(per_frame.sum())} in {per_frame.size} frames ({shown})"
        self._update_overlay(acquisition_id, mask)

    def _update_overlay(self, acquisition_id, mask) -> None:
        """One image layer marking flagged pixels (bounded: one byte per pixel and frame)."""
        for layer in list(self._viewer.layers):
            info = layer.metadata.get("nanosims_overlay")
            if info == acquisition_id:
                self._viewer.layers.remove(layer)
        if not self.show_points.value or not mask.any():
            return
        source = next(iter(channel_layers(self._viewer, acquisition_id).values()))
        stem = source.name.split(" · ")[-1]
        self._viewer.add_image(mask.astype(np.uint8), name=f"{OVERLAY_KIND} · {stem}",
                               scale=tuple(source.scale),
                               units=tuple(str(u) for u in source.units),
                               axis_labels=tuple(source.axis_labels), colormap="cyan",
                               blending="additive", contrast_limits=(0, 1),
                               metadata={"nanosims_overlay": acquisition_id})

    # -- run ------------------------------------------------------------------------
    def run(self, _value=None):
        """Start removing hot pixels in a worker; returns the worker (None if not started)."""
        from napari.utils.notifications import show_warning

        acquisition = self._acquisition()
        if acquisition is None:
            show_warning("Open a NanoSIMS .im file first (no file chosen).")
            return None
        params = self.parameters()
        layers = channel_layers(self._viewer, acquisition.acquisition_id)
        sources = {c.index: (nanosims_info(layers[c.index]), layer_state(layers[c.index]))
                   for c in acquisition.ion_channels}

        def job():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = yield from REMOVE_HOT_PIXELS.iterate(acquisition, **params)
            tuples = results_for_layers(sources, result, KIND_CLEANED, source=acquisition)
            return result, tuples, [str(w.message) for w in caught]

        return self._runner.start(job(), description=f"Removing hot pixels: {acquisition.name}",
                                  on_returned=self._add_layers)

    def _add_layers(self, returned) -> None:
        from napari.utils.notifications import show_warning

        result, tuples, messages = returned
        for message in messages:
            show_warning(message)
        total = int(result.hot_pixels.sum())
        frames = result.hot_pixels.shape[0]

        def done():
            if not self._closed:
                self.count_label.value = f"{total} replaced in {frames} frames"
        LayerAdder(self._viewer, tuples, on_done=done, alive=lambda: not self._closed).start()
