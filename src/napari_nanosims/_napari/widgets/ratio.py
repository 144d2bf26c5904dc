"""The "Ratio" tab: any expression of a file's summed masses, with its error and a display."""

from __future__ import annotations

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, Label
from qtpy.QtCore import QTimer

from ...analysis.accumulate import accumulate
from ...analysis.ratios import STANDARDS, evaluate
from ...steps.analysis import RATIO
from ...steps.progress import Progress
from ..ratio_layers import COLORMAP, DISPLAYS, PAIRS, presets, ratio_layer_tuples  # noqa: F401
from ._base import FileWidget
from ._common import (
    KIND_ALIGNED,
    KIND_CLEANED,
    KIND_CORRECTED,
    KIND_RATIO,
    LayerAdder,
    acquisition_from_layers,
    channel_layers,
    layer_state,
    nanosims_info,
)
from ._controls import control_for, control_value


class RatioWidget(FileWidget):
    """A ratio (or any expression) of the summed masses of one file, recomputed as you type.

    Uses the aligned layers when present (else corrected, cleaned, raw). Adds the value
    (float; the real value under the cursor), optionally its sigma, and an RGB display
    (a colormap with a colour bar, OpenMIMS HSI, or hue modulated by counts).
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, "Update")
        self.preset = ComboBox(label="preset", choices=self._preset_choices, nullable=True)
        # Empty at first: the file's first preset is filled in when a file is chosen.
        self.expression = control_for(RATIO.parameter("expression"), "")
        self.labels_note = Label(label="masses", value="-")
        self.labels_note.native.setWordWrap(True)
        self.standard = ComboBox(label="standard", choices=list(STANDARDS))
        self.standard_value = FloatSpinBox(label="standard ratio", min=0.0, max=10.0,
                                           step=1e-6, value=STANDARDS["AIR 15N/14N"])
        self.standard_value.native.setDecimals(8)
        self.kernel = control_for(RATIO.parameter("kernel"))
        self.min_counts = control_for(RATIO.parameter("min_counts"))
        self.display = ComboBox(label="display", choices=list(DISPLAYS), value=DISPLAYS[0])
        self.auto = CheckBox(label="automatic range", value=True)
        self.low = FloatSpinBox(label="range from", min=-1e9, max=1e9, step=0.001, value=0.0)
        self.high = FloatSpinBox(label="range to", min=-1e9, max=1e9, step=0.001, value=1.0)
        for spin in (self.low, self.high):
            spin.native.setDecimals(6)
        self.show_sigma = CheckBox(label="add the sigma layer", value=False)
        self.result = Label(label="", value="")
        self.result.native.setWordWrap(True)
        self.extend([self.file, self.preset, self.expression, self.labels_note, self.standard,
                     self.standard_value, self.kernel, self.min_counts, self.display,
                     self.auto, self.low, self.high, self.show_sigma, self.result,
                     self.run_button, self.cancel_button, self.progress])
        self._again = False
        self._filling = False
        self._debounce = QTimer(self.native)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(self.run)
        self.file.changed.connect(self._file_changed)
        self.preset.changed.connect(self._preset_chosen)
        self.standard.changed.connect(self._standard_chosen)
        for control in (self.expression, self.kernel, self.min_counts, self.display, self.auto,
                        self.low, self.high, self.show_sigma):
            control.changed.connect(self.schedule)
        self._connect()

    # -- inputs -------------------------------------------------------------------------
    def _mass_labels(self):
        if self.file.value is None:
            return ()
        return tuple(layer.metadata["nanosims"]["label"] for layer
                     in channel_layers(self._viewer, self.file.value).values())

    def _preset_choices(self, _widget=None):
        return [(title, text) for title, text in presets(self._mass_labels())]

    def _file_changed(self, _value=None) -> None:
        self.preset.reset_choices()
        self.labels_note.value = ", ".join(self._mass_labels()) or "-"
        choices = [choice for choice in self.preset.choices if choice is not None]
        if not self.expression.value and choices:
            self._filling = True  # a suggestion, not a request: nothing is computed yet
            try:
                self.preset.value = choices[0]
            finally:
                self._filling = False

    def _preset_chosen(self, value=None) -> None:
        if value:
            self.expression.value = value

    def _standard_chosen(self, name=None) -> None:
        if name in STANDARDS:
            self.standard_value.value = STANDARDS[name]
            text = self.expression.value
            if text.startswith("delta(") and "," in text:
                head = text[:text.rindex(",")]
                self.expression.value = f"{head}, {STANDARDS[name]})"

    def schedule(self, _value=None) -> None:
        """Recompute 300 ms after the last change (the latest change wins)."""
        if self._closed or self._filling:
            return
        try:
            self._debounce.start()
        except RuntimeError:  # the timer went with the widget
            self._closed = True

    def _source_kinds(self):
        return (KIND_ALIGNED, KIND_CORRECTED, KIND_CLEANED)

    # -- run --------------------------------------------------------------------------
    def run(self, _value=None):
        """Evaluate in a worker and add or update the layers; returns the worker."""
        from napari.utils.notifications import show_warning

        if self._runner.running:
            self._again = True
            return None
        acquisition_id = self.file.value
        expression = self.expression.value.strip()
        if acquisition_id is None or not expression:
            return None
        acquisition = acquisition_from_layers(self._viewer, acquisition_id,
                                              self._source_kinds())
        if acquisition is None:
            show_warning("Some channel layers of this file were deleted; open it again.")
            return None
        first = next(iter(channel_layers(self._viewer, acquisition_id).values()))
        info, state = nanosims_info(first), layer_state(first)
        settings = dict(kernel=control_value(RATIO.parameter("kernel"), self.kernel),
                        min_counts=control_value(RATIO.parameter("min_counts"),
                                                 self.min_counts),
                        display=self.display.value, show_sigma=bool(self.show_sigma.value),
                        value_range=None if self.auto.value else (float(self.low.value),
                                                                  float(self.high.value)))
        if self.display.value == "hue-modulated":
            from napari.utils.colormaps import ensure_colormap

            settings["lut"] = np.asarray(ensure_colormap(COLORMAP).colors)

        def job():
            yield Progress("ratio", 0, 2)
            total = accumulate(acquisition)
            derived = evaluate(total, expression, kernel=settings["kernel"],
                               min_counts=settings["min_counts"])
            yield Progress("ratio", 1, 2)
            return ratio_layer_tuples(info, state, derived, total, settings)

        def failed(exc):
            if not self._closed:
                self.result.value = f"cannot evaluate: {exc}"

        worker = self._runner.start(job(), description=f"Ratio: {expression}",
                                    on_returned=self._add_layers)
        if worker is not None:
            worker.errored.connect(failed)
            worker.finished.connect(self._finished)
        return worker

    def _finished(self) -> None:
        if self._again and not self._closed:
            self._again = False
            self.schedule()

    def _add_layers(self, returned) -> None:
        derived, tuples, value_range = returned
        finite = derived.value[np.isfinite(derived.value)]
        unit = f" {derived.unit}" if derived.unit else ""
        median = f"{np.median(finite):.6g}{unit}" if finite.size else "no valid pixel"
        self.result.value = f"{derived.expression}: median {median}"
        if self.auto.value:
            self.low.changed.disconnect(self.schedule)
            self.high.changed.disconnect(self.schedule)
            self.low.value, self.high.value = value_range
            self.low.changed.connect(self.schedule)
            self.high.changed.connect(self.schedule)

        def done():
            if self._closed:
                return
            for layer in self._viewer.layers:
                info = layer.metadata.get("nanosims", {})
                if info.get("kind") == KIND_RATIO and layer.visible:
                    layer.colorbar.visible = True
            overlay = _text_overlay(self._viewer)
            overlay.text = f"{derived.expression}" + (f" ({derived.unit})" if derived.unit
                                                      else " (ratio)")
            overlay.visible = True
        LayerAdder(self._viewer, tuples, on_done=done, alive=lambda: not self._closed).start()



def _text_overlay(viewer):
    """The canvas text overlay: ``viewer.canvas.overlays.text`` since napari 0.9, which
    deprecated ``viewer.text_overlay`` (still the only one in 0.6-0.8)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.overlays.text if canvas is not None else viewer.text_overlay
