"""The "Remove hot pixels" dock widget: the remove_hot_pixels step on an opened file."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, Label, PushButton

from ...io.lazy import mass_stack
from ...processing._frames import FrameStack
from ...processing.alignment.shifts import iter_apply_translations
from ...processing.hot_pixels.hot_pixels import (
    iter_infer_hot_pixels,
    short_stack_repeat_fraction,
)
from ...steps.frames import REMOVE_HOT_PIXELS, effective_hot_pixel_parameters
from ...steps.parameters import HOT_PIXEL_PARAMETERS
from ...steps.progress import run_to_completion
from ._base import FileWidget
from ._common import (
    KIND_ALIGNED,
    KIND_CLEANED,
    LayerAdder,
    acquisition_from_layers,
    channel_layers,
    layer_state,
    nanosims_info,
    results_for_layers,
)
from ._controls import (
    control_for,
    control_value,
    remembered_for,
    save_parameters_for,
    set_default,
)

SECTION = "remove_hot_pixels"
OVERLAY_KIND = "hot pixels"
NO_IONS = "no ion masses in this file (SE only): nothing to clean"
# id(overlay layer) -> (weak reference to it, the flagged pixels at the raw positions);
# the reference typed as a callable returning Any, so that ``reference() is layer`` does
# not make mypy think ``layer`` may be None
_RAW_MASKS: dict[int, tuple[Callable[[], Any], np.ndarray]] = {}
# Metadata key of markers drawn hidden because the file's aligned stacks were still being
# added (their translations not yet readable from the layers); the Align tab moves and
# shows them once every aligned layer is in.
_WAITING_FOR_ALIGNMENT = "nanosims_overlay_waiting"


def acquisition_kind(acquisition) -> str:
    """The kind of acquisition parameters are remembered for: ion masses and frames."""
    n_frames = acquisition.n_frames
    frames = ("1 frame" if n_frames == 1 else "2-10 frames" if n_frames <= 10
              else "more than 10 frames")
    n_ions = len(acquisition.ion_channels)
    return f"{n_ions} ion mass{'es' if n_ions != 1 else ''}, {frames}"


def move_overlays(viewer, acquisition_id: str, translations) -> None:
    """Move the flagged-pixel markers of a file with its frames (whole pixels), after
    alignment; markers whose raw positions are unknown are hidden instead."""
    for layer in list(viewer.layers):
        if layer.metadata.get("nanosims_overlay") != acquisition_id:
            continue
        found = _RAW_MASKS.get(id(layer))
        if found is None or found[0]() is not layer or translations is None:
            layer.visible = False
            continue
        layer.data = shifted_mask(found[1], translations)
        if layer.metadata.pop(_WAITING_FOR_ALIGNMENT, False):
            layer.visible = True  # drawn while the aligned stacks were still arriving


def shifted_mask(mask: np.ndarray, translations) -> np.ndarray:
    """A (frames, y, x) mask moved by per-frame translations rounded to whole pixels, as
    the aligned stacks were (the library's shift, cropped to the frame)."""
    shifts = np.round(np.asarray(translations, dtype=float).reshape(-1, 2))
    padding = int(np.max(np.abs(shifts), initial=0.0)) + 1
    moved = run_to_completion(iter_apply_translations(mask[:, None].astype(np.uint8), shifts,
                                                      padding=padding, crop=True))
    return moved[:, 0].astype(np.uint8)


class HotPixelWidget(FileWidget):
    """Remove correlated-noise hot pixels from the ion channels of one file.

    The controls are the parameters of the ``remove_hot_pixels`` step (their defaults,
    bounds and help come from its definition); they are remembered per kind of
    acquisition (ion masses and frames), never carried silently to other files. On a
    short stack whose ``max_repeat_fraction`` could flag nothing, the rule for short
    stacks is applied (see :func:`short_stack_repeat_fraction`) and the note says so. A
    live count shows how many pixels the parameters flag; "show flagged pixels" overlays
    them (moved with the frames once aligned). Run adds ``"cleaned <label> · <file>"``
    layers; the originals are never modified.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, "Remove hot pixels")
        self.controls = {p.name: control_for(p) for p in HOT_PIXEL_PARAMETERS}
        for name, control in self.controls.items():
            setattr(self, name, control)
        self.note = Label(label="", value="")
        self.note.native.setWordWrap(True)
        self.show_points = CheckBox(label="show flagged pixels", value=False)
        self.count_label = Label(label="flagged", value="-")
        self.count_label.native.setWordWrap(True)
        self.reset_button = PushButton(text="Reset to defaults")
        self._lay_out(controls=[self.file, *self.controls.values(), self.show_points,
                                self.reset_button],
                      results=[self.count_label, self.note])
        self._preview = None
        self._preview_again = False
        self._previewed_id = None
        self._kind: str | None = None  # the kind of acquisition whose parameters the controls hold
        self._remembered = False
        self._loading = False
        self.reset_button.changed.connect(self.reset_defaults)
        for control in self.controls.values():
            control.changed.connect(self._parameters_changed)
        self.file.changed.connect(self._file_changed)
        self.show_points.changed.connect(self._parameters_changed)
        self._connect()

    # -- inputs ---------------------------------------------------------------------
    def _files_refreshed(self, previous) -> None:
        if self.file.value != self._previewed_id:  # the file's last layer came in
            self._file_changed()
        else:
            self._update_note()

    def _file_changed(self, _value=None) -> None:
        acquisition = self._acquisition()
        if acquisition is not None and acquisition.ion_channels:
            self._load_parameters(acquisition_kind(acquisition))
        self._update_note()
        if self.file.value != self._previewed_id:  # not again for every layer added
            self.update_preview()

    def _load_parameters(self, kind: str) -> None:
        """Show the parameters remembered for this kind of acquisition (else defaults)."""
        if kind == self._kind:
            return
        values, self._remembered = remembered_for(HOT_PIXEL_PARAMETERS, SECTION, kind)
        self._loading = True
        try:
            for parameter in HOT_PIXEL_PARAMETERS:
                set_default(parameter, self.controls[parameter.name])
                if values[parameter.name] != parameter.default:
                    self.controls[parameter.name].value = values[parameter.name]
        finally:
            self._loading = False
        self._kind = kind

    def parameters(self) -> dict:
        """The parameters the controls hold, as keyword arguments of the step."""
        return {p.name: control_value(p, self.controls[p.name]) for p in HOT_PIXEL_PARAMETERS}

    def used_parameters(self, acquisition) -> dict:
        """:meth:`parameters` with the rule for short stacks applied to this file."""
        params = self.parameters()
        params["max_repeat_fraction"] = short_stack_repeat_fraction(
            acquisition.n_frames, params["max_repeat_fraction"])
        return params

    def reset_defaults(self, _value=None) -> None:
        """Put every control back to the step's defaults (and remember that)."""
        self._loading = True
        try:
            for parameter in HOT_PIXEL_PARAMETERS:
                set_default(parameter, self.controls[parameter.name])
        finally:
            self._loading = False
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
        if n_ions == 0:
            self.note.value = NO_IONS
            return
        notes = [f"{n_ions} ion mass{'es' if n_ions != 1 else ''}, "
                 f"{n_frames} frame{'s' if n_frames > 1 else ''}"]
        asked = self.parameters()
        if asked["num_outliers"] > n_ions:
            notes.append(f"num_outliers lowered to {n_ions}")
        used = short_stack_repeat_fraction(n_frames, asked["max_repeat_fraction"])
        if used != asked["max_repeat_fraction"]:
            notes.append(f"short stack: max_repeat_fraction {used:.3g} used (pixels hot in "
                         "one frame only are cleaned)")
        if self._remembered:
            notes.append(f"parameters remembered for {self._kind}")
        self.note.value = "; ".join(notes)

    # -- live count -----------------------------------------------------------------
    def _parameters_changed(self, _value=None) -> None:
        if self._loading:
            return
        if self._kind is not None:
            save_parameters_for(SECTION, self._kind, self.parameters())
            self._remembered = True
        self._update_note()
        self.update_preview()

    def update_preview(self):
        """Count flagged pixels per frame with the current parameters, in a worker."""
        # superqt's create_worker: napari's registers every worker with the window for good
        from superqt.utils import create_worker

        acquisition = self._acquisition()
        if acquisition is None or self._closed or not acquisition.ion_channels:
            self.count_label.value = "-"
            return None
        if self._preview is not None:
            self._preview_again = True
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = effective_hot_pixel_parameters(acquisition,
                                                    self.used_parameters(acquisition))
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
        """One image layer marking flagged pixels (bounded: one byte per pixel and frame),
        at the positions of the layers shown: moved with the frames once aligned."""
        for layer in list(self._viewer.layers):
            if layer.metadata.get("nanosims_overlay") == acquisition_id:
                self._viewer.layers.remove(layer)
        if not self.show_points.value or not mask.any():
            return
        source = next(iter(channel_layers(self._viewer, acquisition_id).values()))
        stem = source.name.split(" · ")[-1]
        data = mask.astype(np.uint8)
        metadata = {"nanosims_overlay": acquisition_id}
        if channel_layers(self._viewer, acquisition_id, KIND_ALIGNED):
            aligned = acquisition_from_layers(self._viewer, acquisition_id, (KIND_ALIGNED,))
            translations = getattr(aligned, "translations", None)
            if translations is None:
                # Aligned stacks still arriving (or edited): never show markers at raw
                # positions over aligned frames; the Align tab moves and shows them.
                self.count_label.value += "; markers hidden until the alignment is known"
                metadata[_WAITING_FOR_ALIGNMENT] = True
            else:
                data = shifted_mask(mask, translations)
        layer = self._viewer.add_image(
            data, name=f"{OVERLAY_KIND} · {stem}", scale=tuple(source.scale),
            units=tuple(str(u) for u in source.units), translate=tuple(source.translate),
            axis_labels=tuple(source.axis_labels), colormap="cyan", blending="additive",
            contrast_limits=(0, 1), metadata=metadata,
            visible=_WAITING_FOR_ALIGNMENT not in metadata)
        for key in [key for key, value in _RAW_MASKS.items() if value[0]() is None]:
            del _RAW_MASKS[key]
        _RAW_MASKS[id(layer)] = (weakref.ref(layer), mask)

    # -- run ------------------------------------------------------------------------
    def run(self, _value=None):
        """Start removing hot pixels in a worker; returns the worker (None if not started)."""
        from napari.utils.notifications import show_warning

        acquisition = self._acquisition()
        if acquisition is None:
            show_warning("Open a NanoSIMS .im file first (no file chosen)."
                         if self.file.value is None else
                         "Some channel layers of this file were deleted; open it again.")
            return None
        if not acquisition.ion_channels:
            show_warning(f"{acquisition.name}: {NO_IONS}.")
            return None
        params = self.used_parameters(acquisition)
        layers = channel_layers(self._viewer, acquisition.acquisition_id)
        sources = {c.index: (nanosims_info(layers[c.index]), layer_state(layers[c.index]))
                   for c in acquisition.ion_channels}
        read_from = {c.index: layers[c.index] for c in acquisition.ion_channels}

        def job():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = yield from REMOVE_HOT_PIXELS.iterate(acquisition, **params)
            tuples = results_for_layers(sources, result, KIND_CLEANED, source=acquisition)
            return result, tuples, [str(w.message) for w in caught]

        return self._runner.start(job(), description=f"Removing hot pixels: {acquisition.name}",
                                  on_returned=lambda returned: self._add_layers(returned,
                                                                                read_from))

    def _add_layers(self, returned, read_from=None) -> None:
        from napari.utils.notifications import show_warning

        result, tuples, messages = returned
        for message in messages:
            show_warning(message)
        total = int(result.hot_pixels.sum())
        frames = result.hot_pixels.shape[0]

        def done():
            if not self._closed:
                self.count_label.value = f"{total} replaced in {frames} frames"
        LayerAdder(self._viewer, tuples, on_done=done, alive=lambda: not self._closed,
                   sources=read_from).start()
