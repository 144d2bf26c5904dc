"""The "Ratio" tab: any expression of a file's summed masses, with its error and a display."""

from __future__ import annotations

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, Label
from qtpy.QtCore import QTimer

from ...analysis.accumulate import accumulate
from ...analysis.display import hsi_rgb
from ...analysis.ratios import STANDARDS, evaluate
from ...export.ratio import auto_range
from ...steps.analysis import RATIO
from ...steps.progress import Progress
from ..layers import derived_layer_data
from ._base import FileWidget
from ._common import (
    KIND_ALIGNED,
    KIND_CLEANED,
    KIND_CORRECTED,
    KIND_DISPLAY,
    KIND_RATIO,
    KIND_SIGMA,
    NOT_A_CHANNEL,
    LayerAdder,
    acquisition_from_layers,
    channel_layers,
    layer_state,
    nanosims_info,
)
from ._controls import control_for, control_value

DISPLAYS = ("colormap", "OpenMIMS HSI", "hue-modulated")
COLORMAP = "cividis"  # perceptually uniform, readable by colour-blind viewers
# Isotope pairs with their usual standard: (rare, common, standard name)
PAIRS = (("12C 15N", "12C 14N", "AIR 15N/14N"), ("13C", "12C", "VPDB 13C/12C"),
         ("12C 13C", "12C2", "VPDB 13C/12C"), ("18O", "16O", "VSMOW 18O/16O"),
         ("2H", "1H", "VSMOW 2H/1H"), ("34S", "32S", "VCDT 34S/32S"))


def presets(labels) -> list[tuple[str, str]]:
    """(title, expression) presets for the masses of a file: ratio, fraction, delta."""
    found = []
    squeeze = {"".join(label.split()): label for label in labels}
    for rare, common, standard in PAIRS:
        a, b = "".join(rare.split()), "".join(common.split())
        if a in squeeze and b in squeeze:
            value = STANDARDS[standard]
            if rare == "12C 13C":  # dimers: 12C13C/12C2 = 2 x 13C/12C
                # With a 13C atom fraction f, dimers form as 12C13C ~ 2f(1-f) (two
                # arrangements) and 12C2 ~ (1-f)**2, so 12C13C/(12C13C+2*12C2) = f.
                found += [(f"{a}/{b}", f"{a}/{b}"), ("13C/12C from dimers", f"{a}/(2*{b})"),
                          ("at-% 13C from dimers", f"100*{a}/({a}+2*{b})"),
                          (f"delta vs {standard}", f"delta({a}/(2*{b}), {value})")]
            else:
                found += [(f"{a}/{b}", f"{a}/{b}"), (f"at-% {a}", f"100*{a}/({a}+{b})"),
                          (f"delta vs {standard}", f"delta({a}/{b}, {value})")]
    return found


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
            return _layer_tuples(info, state, derived, total, settings)

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


def _hsi_colormap():
    """The OpenMIMS HSI colour table as a napari colormap (for the colour bar)."""
    from napari.utils.colormaps import Colormap

    from ...analysis.display import openmims_colour_table

    colours = openmims_colour_table(np.linspace(0, 65535, 256).astype(np.int64))
    return Colormap(np.column_stack([colours, np.ones(256)]), name="openmims-hsi")


def _layer_tuples(info, state, derived, total, settings):
    """Value, sigma and RGB display layer tuples (computed in the worker)."""
    value_range = settings["value_range"] or auto_range(derived)
    base = dict(info, detector_index=NOT_A_CHANNEL[KIND_RATIO], label=derived.expression)
    two_d = dict(state, colormap=COLORMAP, blending="translucent", visible=True)
    history = [record.to_dict() for record in derived.history]
    value = derived_layer_data(dict(base), two_d, derived.value[None], KIND_RATIO, history,
                               two_d=True)
    value = (derived.value, dict(value[1], contrast_limits=value_range), "image")
    tuples = []
    if settings["display"] == "colormap":
        tuples.append(value)
    else:
        if settings["display"] == "OpenMIMS HSI" and derived.numerator is not None:
            rgb = hsi_rgb(derived, value_range=value_range)
            # the value layer below the colours carries the colour bar: give it the same
            # colours (the HSI table sampled at 256 points)
            value[1]["colormap"] = _hsi_colormap()
        else:
            intensity = np.nansum(total.counts, axis=0)
            rgb = hsi_rgb(derived, value_range=value_range, mode="modulated",
                          colormap=settings.get("lut", np.linspace(0, 1, 256)[:, None]
                                                * np.ones((1, 3))),
                          intensity=intensity)
        # the value stays visible under the opaque colours: its value is under the cursor
        # and its colour bar (same colours, same range) is on the canvas
        tuples.append(value)
        display = derived_layer_data(dict(base, detector_index=NOT_A_CHANNEL[KIND_DISPLAY]),
                                     dict(two_d),
                                     rgb[None], KIND_DISPLAY, history, two_d=True)
        kwargs = dict(display[1])
        for key in ("colormap", "contrast_limits"):
            kwargs.pop(key, None)
        kwargs["rgb"] = True
        tuples.append((rgb, kwargs, "image"))
    if settings["show_sigma"]:
        sigma = derived_layer_data(dict(base, detector_index=NOT_A_CHANNEL[KIND_SIGMA]),
                                   dict(two_d, visible=False),
                                   derived.sigma[None], KIND_SIGMA, history, two_d=True)
        tuples.append((derived.sigma, sigma[1], "image"))
    return derived, tuples, value_range
