"""The "Ratio" tab: any expression of a file's summed masses, with its error and a display."""

from __future__ import annotations

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, Label, PushButton
from qtpy.QtCore import QTimer

from ...analysis.accumulate import accumulate
from ...analysis.bounds import MIN_COUNTS_OF_ALL
from ...analysis.expression import parse
from ...analysis.ratios import STANDARDS, evaluate
from ...export.figure import quantity_label
from ...steps.analysis import RATIO
from ...steps.progress import Progress
from ..ratio_layers import COLORMAP, DISPLAYS, PAIRS, presets, ratio_layer_tuples  # noqa: F401
from ._base import FileWidget
from ._common import (
    KIND_ALIGNED,
    KIND_CLEANED,
    KIND_CORRECTED,
    KIND_DISPLAY,
    KIND_RATIO,
    KIND_SIGMA,
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

    Nothing is computed while the expression does not parse: the parser's message shows
    under the box (no notification), and a valid expression is computed 400 ms after the
    last key. The layers are renamed with the expression they hold. Pixels where the
    chosen mass ("mask on"; every mass used by default) has fewer than "min counts" raw
    counts are masked (NaN), and the median is over the other pixels.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, "Update")
        self.preset = ComboBox(label="preset", choices=self._preset_choices, nullable=True)
        # Empty at first: the file's first preset is filled in when a file is chosen.
        self.expression = control_for(RATIO.parameter("expression"), "")
        self.expression_note = Label(label="", value="")  # the parser's message
        self.expression_note.native.setWordWrap(True)
        self.labels_note = Label(label="masses", value="-")
        self.labels_note.native.setWordWrap(True)
        self.standard = ComboBox(label="standard", choices=list(STANDARDS))
        self.standard_value = FloatSpinBox(label="standard ratio", min=0.0, max=10.0,
                                           step=1e-6, value=STANDARDS["AIR 15N/14N"])
        self.standard_value.native.setDecimals(8)
        self.kernel = control_for(RATIO.parameter("kernel"))
        self.min_counts = control_for(RATIO.parameter("min_counts"))
        self.mask_on = control_for(RATIO.parameter("min_counts_of"),
                                   choices=self._mask_choices)
        self.display = ComboBox(label="display", choices=list(DISPLAYS), value=DISPLAYS[0])
        self.auto = CheckBox(label="automatic range", value=True)
        self.low = FloatSpinBox(label="range from", min=-1e9, max=1e9, step=0.001, value=0.0)
        self.high = FloatSpinBox(label="range to", min=-1e9, max=1e9, step=0.001, value=1.0)
        for spin in (self.low, self.high):
            spin.native.setDecimals(6)
        self.show_sigma = CheckBox(label="add the sigma layer", value=False)
        self.result = Label(label="", value="")
        self.result.native.setWordWrap(True)
        self.figure_button = PushButton(text="Save figure")
        self.figure_button.tooltip = ("PNG of the ratio with a colour bar (expression, unit, "
                                      "range) and a scale bar in µm; HSI when shown as HSI")
        self._lay_out(controls=[self.file, self.preset, self.expression, self.expression_note,
                                self.labels_note, self.standard, self.standard_value,
                                self.kernel, self.min_counts, self.mask_on, self.display,
                                self.auto, self.low, self.high, self.show_sigma],
                      results=[self.result, self.figure_button])
        self.derived = None  # the DerivedImage the layers show
        self._again = False
        self._filling = False
        self._debounce = QTimer(self.native)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(400)
        self._debounce.timeout.connect(self.run)
        self.file.changed.connect(self._file_changed)
        self.preset.changed.connect(self._preset_chosen)
        self.standard.changed.connect(self._standard_chosen)
        for control in (self.expression, self.kernel, self.min_counts, self.mask_on,
                        self.display, self.auto, self.low, self.high, self.show_sigma):
            control.changed.connect(self.schedule)
        self.figure_button.changed.connect(lambda _v=None: self.save_figure())
        self._connect()

    # -- inputs -------------------------------------------------------------------------
    def _mass_labels(self):
        if self.file.value is None:
            return ()
        return tuple(layer.metadata["nanosims"]["label"] for layer
                     in channel_layers(self._viewer, self.file.value).values())

    def _mask_choices(self, _widget=None):
        """'every mass used', then the file's ion masses (LANS masks on one of them)."""
        ions = []
        if getattr(self, "file", None) is not None and self.file.value is not None:
            ions = [layer.metadata["nanosims"]["label"] for index, layer in channel_layers(
                self._viewer, self.file.value).items()
                if layer.metadata["nanosims"].get("detector") != "SE"
                and layer.metadata["nanosims"]["label"] != "SE"]
        return [("every mass used", MIN_COUNTS_OF_ALL)] + [(label, label) for label in ions]

    def _preset_choices(self, _widget=None):
        return [(title, text) for title, text in presets(self._mass_labels())]

    def _files_refreshed(self, previous) -> None:
        """A file's layers arrive one by one (the panel can be docked first): the
        masses, presets and the first suggestion follow every layer added."""
        self._file_changed()

    def _file_changed(self, _value=None) -> None:
        self.preset.reset_choices()
        chosen = self.mask_on.value
        self.mask_on.reset_choices()
        if chosen in [value for _, value in self._mask_choices()]:
            self.mask_on.value = chosen
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

    def check_expression(self) -> str | None:
        """The parser's message for the expression (None: it parses and uses a mass).

        Shown under the box; an expression that does not parse yet (typing) is never
        computed and never raises a notification.
        """
        text = self.expression.value.strip()
        message: str | None
        if not text:
            message = "type an expression of the masses, e.g. 13C/12C"
        else:
            try:
                node = parse(text, self._mass_labels())
                message = None if node.labels() else "the expression uses no mass"
            except ValueError as exc:
                message = str(exc)
        try:
            self.expression_note.value = message or ""
        except RuntimeError:  # the widget is gone
            self._closed = True
        return message

    def schedule(self, _value=None) -> None:
        """Recompute 400 ms after the last change (the latest change wins), once the
        expression parses."""
        if self._closed or self._filling:
            return
        try:
            self._preset_follows_expression()
            if self.check_expression() is not None:
                self._debounce.stop()
                return
            self._debounce.start()
        except RuntimeError:  # the timer went with the widget
            self._closed = True

    def _preset_follows_expression(self) -> None:
        """The preset shows the typed expression's preset, or nothing when it has none,
        never a preset the expression no longer is."""
        typed = "".join(self.expression.value.split())
        match = next((value for value in self.preset.choices
                      if value is not None and "".join(value.split()) == typed), None)
        if self.preset.value != match:
            with self.preset.changed.blocked():
                self.preset.value = match

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
        if acquisition_id is None or self.check_expression() is not None:
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
                        min_counts_of=control_value(RATIO.parameter("min_counts_of"),
                                                    self.mask_on) or MIN_COUNTS_OF_ALL,
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
                               min_counts=settings["min_counts"],
                               min_counts_of=settings["min_counts_of"])
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
        if self._closed:
            return
        self.derived = derived
        self.result.value = summary(derived)
        if self.auto.value:
            self.low.changed.disconnect(self.schedule)
            self.high.changed.disconnect(self.schedule)
            self.low.value, self.high.value = value_range
            self.low.changed.connect(self.schedule)
            self.high.changed.connect(self.schedule)
        # our layers of this file are renamed and refilled in this event-loop turn, so
        # that no name, metadata or title ever stands for another expression's data
        new = [entry for entry in tuples if not _update_ratio_layer(self._viewer, *entry)]
        kinds = {entry[1]["metadata"]["nanosims"]["kind"] for entry in tuples}
        acquisition_id = tuples[0][1]["metadata"]["nanosims"]["acquisition_id"]
        for layer in list(self._viewer.layers):
            info = nanosims_info(layer)
            if (info and info["acquisition_id"] == acquisition_id
                    and info.get("kind") == KIND_DISPLAY and KIND_DISPLAY not in kinds):
                self._viewer.layers.remove(layer)  # a colormap now: the RGB would hide it
        title = quantity_label(derived)

        def done():
            if self._closed:
                return
            for layer in self._viewer.layers:
                info = layer.metadata.get("nanosims", {})
                if info.get("kind") == KIND_RATIO and layer.visible:
                    layer.colorbar.visible = True
            overlay = _text_overlay(self._viewer)
            overlay.text = title
            overlay.visible = True
        if new:
            LayerAdder(self._viewer, new, on_done=done, alive=lambda: not self._closed).start()
        else:  # every layer was updated in place
            done()

    # -- figure -----------------------------------------------------------------------
    def save_figure(self, path=None, overwrite: bool = False):
        """Write the ratio shown as a PNG figure (colour bar, scale bar in µm).

        The display is the OpenMIMS HSI when the tab shows HSI, else the colormap; the
        range is the tab's. Asks where when ``path`` is None (the dialog confirms
        replacing a file); a given ``path`` that exists is kept unless ``overwrite``.
        Returns the description of the figure (see ``write_ratio_figure``) or None.
        """
        import os
        from pathlib import Path

        from napari.utils.notifications import show_warning

        from ...export._files import atomic_output
        from ...export.figure import write_ratio_figure

        derived = self.derived
        if derived is None:
            show_warning("Compute a ratio first.")
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            stem = "".join(c if c.isalnum() or c in "+-." else "_"
                           for c in derived.expression.replace(" ", ""))
            path, _ = QFileDialog.getSaveFileName(self.native, "Save figure",
                                                  f"{stem}.png", "PNG (*.png)")
            if not path:
                return None
        elif os.path.lexists(path) and not overwrite:
            show_warning(f"{path} exists; not replaced.")
            return None
        display = "hsi" if (self.display.value == "OpenMIMS HSI"
                            and derived.numerator is not None) else "colormap"
        with atomic_output(Path(path), overwrite=True) as temporary:
            described = write_ratio_figure(derived, temporary,
                                           value_range=(self.low.value, self.high.value),
                                           display=display, colormap=COLORMAP)
        self.result.value = f"{self.result.value.split(' · saved')[0]} · saved {Path(path).name}"
        return described


def summary(derived) -> str:
    """``13C/12C: median 0.01124 over 40512 px; 38 % masked (< 10 counts of 12C)``: the
    median over the pixels kept, and what was masked by the evaluation's threshold."""
    used = derived.history[-1].parameters
    min_counts, mask_on = used.get("min_counts", 0.0), used.get("min_counts_of",
                                                                MIN_COUNTS_OF_ALL)
    finite = derived.value[np.isfinite(derived.value)]
    unit = f" {derived.unit}" if derived.unit else ""
    masked = 100 * (1 - finite.size / derived.value.size)
    median = f"median {np.median(finite):.4g}{unit}" if finite.size else "no valid pixel"
    of = "every mass used" if mask_on == MIN_COUNTS_OF_ALL else mask_on
    return (f"{derived.expression}: {median} over {finite.size} px; {masked:.0f} % "
            f"masked (< {min_counts:g} counts of {of})")


def _update_ratio_layer(viewer, data, kwargs, _kind) -> bool:
    """Put a result into our layer of the same file and kind, renamed; False: none."""
    info = kwargs["metadata"]["nanosims"]
    for layer in viewer.layers:
        other = nanosims_info(layer)
        if (other and other["acquisition_id"] == info["acquisition_id"]
                and other.get("kind") == info["kind"]
                and info["kind"] in (KIND_RATIO, KIND_SIGMA, KIND_DISPLAY)
                and getattr(layer, "rgb", False) == bool(kwargs.get("rgb"))):
            layer.data = data
            layer.metadata = kwargs["metadata"]
            layer.name = kwargs["name"]
            if "contrast_limits" in kwargs:
                layer.contrast_limits = kwargs["contrast_limits"]
            if "colormap" in kwargs and not kwargs.get("rgb"):
                layer.colormap = kwargs["colormap"]
            return True
    return False


def _text_overlay(viewer):
    """The canvas text overlay: ``viewer.canvas.overlays.text`` since napari 0.9, which
    deprecated ``viewer.text_overlay`` (still the only one in 0.6-0.8)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.overlays.text if canvas is not None else viewer.text_overlay
