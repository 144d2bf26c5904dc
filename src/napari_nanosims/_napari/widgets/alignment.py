"""The "Align frames" dock widget."""

from __future__ import annotations

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, Label, PushButton, SpinBox
from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from ...analysis.accumulate import accumulate
from ...steps.frames import default_alignment_channel
from ...steps.parameters import ALIGN_PARAMETERS, EXCLUDE_PARAMETERS
from ...steps.recipe import Recipe, iter_run_recipe
from ..field_layers import field_layer_data, field_note
from ..lookups import KIND_FIELD
from ._base import FileWidget
from ._common import (
    KIND_ALIGNED,
    KIND_CLEANED,
    KIND_CORRECTED,
    KIND_SUM,
    LayerAdder,
    acquisition_from_layers,
    channel_layers,
    coverage_layer_data,
    layer_state,
    nanosims_info,
    reset_in_order,
    results_for_layers,
    source_layers,
)
from ._controls import control_for, control_value, remembered, save_parameters, set_default
from ._regions import region_layers, region_mask
from .hot_pixels import move_overlays

SECTION = "align_frames"
METHODS = {"whole pixel (openformat)": "sequential", "sub-pixel": "subpixel",
           "piecewise (non-rigid)": "piecewise"}
SHOWN = ("method", "upsample_factor", "padding")  # reference stays a library/CLI option
SUM_CHOICE = "sum"  # the 'align on' value for the sum of all ion channels
WHOLE_FRAME = "whole frame"
ONE_FRAME = "one frame: nothing to align"


def frames_outside(frames: range, n_frames: int) -> str:
    """The ``exclude_frames`` text that leaves out every frame outside ``frames``
    (``'0-4, 15-19'`` for frames 5-14 of 20; empty when ``frames`` is all of them)."""
    parts = []
    if frames.start > 0:
        parts.append(f"0-{frames.start - 1}")
    if frames.stop < n_frames:
        parts.append(f"{frames.stop}-{n_frames - 1}")
    return ", ".join(parts)


class DriftPlot(QWidget):
    """A small plot of the translation per frame, both axes with a legend: rows (y) in
    orange, columns (x) in cyan; frames the alignment flagged are marked in red.
    Clicking the plot calls ``on_frame_clicked(frame)`` (the widget jumps the viewer there).
    """

    def __init__(self, parent=None, on_frame_clicked=None):
        super().__init__(parent)
        self.translations = np.zeros((0, 2))
        self.flagged = np.zeros(0, bool)
        self.on_frame_clicked = on_frame_clicked
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("translation applied to each frame, pixels: y orange, x cyan; "
                        "red: frames that did not register. Click to go to a frame.")

    def set_translations(self, translations, flagged=None) -> None:
        self.translations = np.asarray(translations, dtype=float).reshape(-1, 2)
        n_frames = len(self.translations)
        self.flagged = (np.zeros(n_frames, bool) if flagged is None
                        else np.asarray(flagged, bool).reshape(n_frames))
        self.update()

    _MARGIN = 24

    def frame_at(self, x: float) -> int | None:
        """The frame under horizontal position ``x`` (pixels of the plot), or None."""
        n_frames = len(self.translations)
        if n_frames == 0:
            return None
        span = max(self.width() - 2 * self._MARGIN, 1)
        fraction = (x - self._MARGIN) / span
        return int(np.clip(round(fraction * max(n_frames - 1, 1)), 0, n_frames - 1))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        try:
            frame = self.frame_at(event.position().x())
            if frame is not None and self.on_frame_clicked is not None:
                self.on_frame_clicked(frame)
        except Exception:  # noqa: BLE001 - an exception escaping a Qt handler aborts PyQt6
            pass

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 30, 30))
        margin, width, height = self._MARGIN, self.width(), self.height()
        painter.setPen(QColor(200, 200, 200))
        n_frames = len(self.translations)
        if n_frames <= 1:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                             ONE_FRAME if n_frames == 1 else "drift: run alignment")
            painter.end()
            return
        low = min(float(self.translations.min()), -1.0)
        high = max(float(self.translations.max()), 1.0)

        def point(frame, value):
            x = margin + (width - 2 * margin) * (frame / max(n_frames - 1, 1))
            y = height - margin - (height - 2 * margin) * ((value - low) / (high - low))
            return QPointF(x, y)

        painter.drawText(2, 12, f"{high:+.1f} px")
        legend = [("y (rows)", QColor(255, 160, 40)), ("x (columns)", QColor(60, 200, 255))]
        if self.flagged.any():
            legend.append((f"flagged ({int(self.flagged.sum())})", QColor(255, 60, 60)))
        for row, (name, color) in enumerate(legend):
            painter.setPen(color)
            painter.drawText(width - 100, 12 + 13 * row, name)
        painter.setPen(QColor(200, 200, 200))
        painter.drawText(2, height - 4, f"{low:+.1f} px   frames 0-{n_frames - 1}")
        painter.setPen(QPen(QColor(90, 90, 90), 1, Qt.PenStyle.DashLine))
        painter.drawLine(point(0, 0.0), point(n_frames - 1, 0.0))
        painter.setPen(QPen(QColor(255, 60, 60), 1))
        for frame in np.flatnonzero(self.flagged):
            top, bottom = point(frame, high), point(frame, low)
            painter.drawLine(top, bottom)
        for column, color in ((0, QColor(255, 160, 40)), (1, QColor(60, 200, 255))):
            painter.setPen(QPen(color, 2))
            painter.drawPolyline(QPolygonF([point(f, v) for f, v in
                                            enumerate(self.translations[:, column])]))
        painter.end()


class AlignFramesWidget(FileWidget):
    """Correct the drift between frames of one file and sum the aligned frames.

    Runs the ``align_frames``, ``exclude_frames`` (the frames outside 'sum from frame' to
    'to frame', and the flagged ones when asked) and ``sum_frames`` steps as recipes
    (defaults, bounds and help from their definitions), so that the sums' history replays
    with ``nanosims process --recipe``. Translations are inferred on one channel ('auto':
    12C 14N when present, else the strongest ion channel) and applied to every channel,
    from the cleaned layers when asked and present. Adds ``"<label> · aligned · <file>"``
    stacks (every frame; shown instead of their sources) and
    ``"<label> · aligned sum · <file>"`` images (hidden at first); after a piecewise
    alignment, the field as arrows over the stacks (``"displacement field · <file>"``,
    :mod:`..field_layers`), unless it is 0 everywhere.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, "Align frames")
        values = remembered(ALIGN_PARAMETERS, SECTION)
        by_name = {p.name: p for p in ALIGN_PARAMETERS}
        self.detector = control_for(by_name["channel"], choices=self._detector_choices,
                                    nullable=True)
        self.method = control_for(by_name["method"], choices=list(METHODS))
        self.method.value = next(k for k, v in METHODS.items() if v == values["method"])
        self.upsample_factor = control_for(by_name["upsample_factor"], values["upsample_factor"])
        self.padding = control_for(by_name["padding"], values["padding"])
        self.region = control_for(by_name["region"], choices=self._region_choices,
                                  note="Here: the area of a Shapes or Labels layer drawn "
                                       "on the image")
        self.leave_out_flagged = control_for(EXCLUDE_PARAMETERS[1])
        self.use_cleaned = CheckBox(label="use corrected or cleaned layers", value=True,
                                    tooltip="per channel: the corrected layer when there is "
                                            "one, else the cleaned one, else the raw one")
        self.first_frame = SpinBox(label="sum from frame", min=0, max=100_000, value=0,
                                   tooltip="first frame of the sums (0 = the first)")
        self.last_frame = SpinBox(label="to frame (0=last)", min=0, max=100_000, value=0,
                                  tooltip="last frame of the sums, included; 0 = the last")
        self.reset_button = PushButton(text="Reset to defaults")
        self.summary = Label(label="drift", value="-")
        self.summary.native.setWordWrap(True)
        self.plot = DriftPlot(on_frame_clicked=self.go_to_frame)
        self._lay_out(controls=[self.file, self.detector, self.method, self.upsample_factor,
                                self.padding, self.region, self.leave_out_flagged,
                                self.use_cleaned, self.first_frame, self.last_frame,
                                self.reset_button],
                      results=[self.summary, self.plot])
        # Until the user picks a channel, follow the default as layers arrive.
        self._detector_is_default = True
        self._setting_detector = False
        self.detector.changed.connect(self._detector_changed)
        self.reset_button.changed.connect(self.reset_defaults)
        self.file.changed.connect(self._file_changed)
        for widget in (self.method, self.upsample_factor, self.padding):
            widget.changed.connect(self._save)
        self.method.changed.connect(self._method_changed)
        self._connect()
        self._method_changed()

    def _region_choices(self, _widget=None):
        if not hasattr(self, "_viewer"):
            return [WHOLE_FRAME]
        return [WHOLE_FRAME] + [layer.name for layer in region_layers(self._viewer)]

    def go_to_frame(self, frame: int) -> None:
        """Show ``frame`` in the viewer (the first axis of the stacks)."""
        if self._viewer.dims.ndim >= 3:
            self._viewer.dims.set_current_step(0, int(frame))

    def _detector_choices(self, _widget=None):
        """The ion masses in file order, then their sum, then SE."""
        acquisition_id = self.file.value if hasattr(self, "file") else None
        if acquisition_id is None:
            return []
        ions, se = [], []
        for index, layer in channel_layers(self._viewer, acquisition_id).items():
            info = layer.metadata["nanosims"]
            is_se = index == info.get("header", {}).get("se_index")
            (se if is_se else ions).append((info["label"], index))
        return ions + ([("sum of ion channels", SUM_CHOICE)] if ions else []) + se

    def _files_refreshed(self, previous) -> None:
        self._file_changed()  # the channels, and the default channel, as layers arrive

    def _detector_changed(self, _value=None) -> None:
        if not self._setting_detector:
            self._detector_is_default = False

    def _file_changed(self, _value=None) -> None:
        previous = self.detector.value
        self._setting_detector = True
        try:
            reset_in_order(self.detector)
            keep = (not self._detector_is_default and previous is not None
                    and previous in self.detector.choices)
            self.detector.value = previous if keep else self.default_detector()
        finally:
            self._setting_detector = False

    def default_detector(self):
        """The 'auto' channel of the step: 12C 14N, else the strongest ion channel."""
        acquisition_id = self.file.value
        if acquisition_id is None:
            return None
        acquisition = acquisition_from_layers(self._viewer, acquisition_id)
        if acquisition is None:
            return None
        return acquisition.channel(default_alignment_channel(acquisition)).index

    def _method_changed(self, _value=None) -> None:
        subpixel = METHODS[self.method.value] in ("subpixel", "piecewise")
        self.upsample_factor.enabled = subpixel
        self.region.enabled = subpixel
        self.leave_out_flagged.enabled = subpixel

    def parameters(self) -> dict:
        """The align_frames parameters the controls hold (the channel by its label)."""
        by_name = {p.name: p for p in ALIGN_PARAMETERS}
        label = None
        if self.detector.value == SUM_CHOICE:
            label = "sum"
        elif self.detector.value is not None and self.file.value is not None:
            layers = channel_layers(self._viewer, self.file.value)
            layer = layers.get(self.detector.value)
            label = layer.metadata["nanosims"]["label"] if layer is not None else None
        return dict(channel=label or "auto", method=METHODS[self.method.value],
                    upsample_factor=control_value(by_name["upsample_factor"],
                                                  self.upsample_factor),
                    padding=control_value(by_name["padding"], self.padding), reference=None,
                    region=None)

    def frame_selection(self, n_frames: int):
        """The frames to sum, as a range, or None when the controls are out of range."""
        first = int(self.first_frame.value)
        last = int(self.last_frame.value) or n_frames - 1
        if not 0 <= first <= last < n_frames:
            return None
        return range(first, last + 1)

    def reset_defaults(self, _value=None) -> None:
        """Put every control back to the step's defaults (the channel back to 'auto')."""
        by_name = {p.name: p for p in ALIGN_PARAMETERS}
        self.method.value = next(k for k, v in METHODS.items()
                                 if v == by_name["method"].default)
        set_default(by_name["upsample_factor"], self.upsample_factor)
        set_default(by_name["padding"], self.padding)
        self.use_cleaned.value = True
        self.region.value = WHOLE_FRAME
        set_default(EXCLUDE_PARAMETERS[1], self.leave_out_flagged)
        self.first_frame.value = self.last_frame.value = 0
        self._detector_is_default = True
        self._file_changed()
        self._save()

    def _save(self, _value=None) -> None:
        parameters = self.parameters()
        save_parameters(SECTION, {k: parameters[k] for k in SHOWN})

    def run(self, _value=None):
        """Start the alignment in a worker; returns the worker (None if not started)."""
        from napari.utils.notifications import show_warning

        acquisition_id = self.file.value
        if acquisition_id is None or self.detector.value is None:
            show_warning("Open a NanoSIMS .im file and choose a channel to align on.")
            return None
        prefer = (KIND_CORRECTED, KIND_CLEANED) if self.use_cleaned.value else ()
        acquisition = acquisition_from_layers(self._viewer, acquisition_id, prefer)
        if acquisition is None:
            show_warning("Some channel layers of this file were deleted; open it again.")
            return None
        layers = source_layers(self._viewer, acquisition_id, prefer)
        sources = {index: (nanosims_info(layer), layer_state(layer))
                   for index, layer in layers.items()}
        sum_sources = {index: (info, dict(state, visible=False))
                       for index, (info, state) in sources.items()}
        params = self.parameters()
        if params["method"] in ("subpixel", "piecewise") \
                and self.region.value not in (None, WHOLE_FRAME):
            try:
                layer = self._viewer.layers[self.region.value]
                params["region"] = region_mask(layer, layers[min(layers)],
                                               acquisition.shape[2:])
            except (KeyError, ValueError) as exc:
                show_warning(f"Region: {exc}")
                return None
        leave_out = (self.leave_out_flagged.value
                     and params["method"] in ("subpixel", "piecewise"))
        frames = self.frame_selection(acquisition.n_frames)
        if frames is None:
            show_warning(f"The frames to sum must lie within 0..{acquisition.n_frames - 1} "
                         "and the first must not come after the last.")
            return None
        first_source = sources[min(sources)]
        # The steps themselves, through the recipe machinery: the sums' history is then a
        # recipe that `nanosims process --recipe` replays to the same arrays.
        aligning = Recipe((("align_frames", params),))
        left_out = frames_outside(frames, acquisition.n_frames)
        summing = Recipe(((("exclude_frames", {"frames": left_out, "flagged": leave_out}),)
                          if left_out or leave_out else ()) + (("sum_frames", {}),))

        def job():
            aligned = yield from iter_run_recipe(acquisition, aligning)
            summed = yield from iter_run_recipe(aligned, summing)
            # the stacks keep every frame (the drift plot's frames); the sums and the
            # coverage are those of the frames kept
            tuples = (results_for_layers(sources, aligned, KIND_ALIGNED, source=acquisition)
                      + results_for_layers(sum_sources, summed, KIND_SUM, sums=True)
                      + [coverage_layer_data(first_source, accumulate(summed), summed)])
            field = field_layer_data(first_source, aligned)  # None: rigid or no field
            return aligned, tuples + ([field] if field is not None else [])

        return self._runner.start(job(), description=f"Aligning frames: {acquisition.name}",
                                  on_returned=lambda returned: self._add_layers(returned,
                                                                                layers))

    def _add_layers(self, returned, read_from=None) -> None:
        result, tuples = returned
        translations = result.translations
        registration = result.registration
        flagged = None if registration is None else registration.flagged

        one_frame = len(translations) == 1
        acquisition_id = result.acquisition_id

        def done():
            if self._closed:
                return
            move_overlays(self._viewer, acquisition_id, translations)
            if one_frame:  # nothing was registered, so nothing failed either
                self.plot.set_translations(translations, None)
                self.summary.value = ONE_FRAME
                return
            self.plot.set_translations(translations, flagged)
            span = np.ptp(np.asarray(translations, dtype=float), axis=0)
            text = f"range y {span[0]:.3g} px, x {span[1]:.3g} px"
            if registration is not None:
                worst = float(np.max(registration.uncertainty_px[~registration.flagged],
                                     initial=0.0))
                text += (f"; uncertainty up to {worst:.3g} px; flagged frames: "
                         + (", ".join(map(str, np.flatnonzero(flagged))) or "none"))
            note = field_note(registration)
            self.summary.value = text + (f"; {note}" if note else "")
        # a new alignment's field replaces the last one's, or removes it (rigid result)
        LayerAdder(self._viewer, tuples, on_done=done, alive=lambda: not self._closed,
                   sources=read_from, removes=(KIND_FIELD,)).start()
