"""The "Align frames" dock widget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import napari.viewer
from magicgui.widgets import (CheckBox, ComboBox, Container, Label, ProgressBar, PushButton,
                              SpinBox)
from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from ...processing.alignment import iter_apply_translations, iter_infer_translations, translation_steps
from ._common import (KIND_ALIGNED, KIND_CLEANED, KIND_SUM, WorkerRunner, add_or_update_layer,
                      detector_layers, file_choices, load_parameters, save_parameters,
                      select_first_file)
from ...processing._frames import FrameStack

SECTION = "align_frames"
METHODS = {"whole pixel (openformat)": "sequential", "sub-pixel": "subpixel"}
DEFAULTS = dict(method="sequential", upsample_factor=20, padding=8, use_cleaned=True)


class DriftPlot(QWidget):
    """A small plot of the translation per frame: rows (y) in orange, columns (x) in cyan."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.translations = np.zeros((0, 2))
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("translation applied to each frame, pixels: y orange, x cyan")

    def set_translations(self, translations) -> None:
        self.translations = np.asarray(translations, dtype=float).reshape(-1, 2)
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 30, 30))
        margin, width, height = 24, self.width(), self.height()
        painter.setPen(QColor(200, 200, 200))
        n_frames = len(self.translations)
        if n_frames == 0:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "drift: run alignment")
            painter.end()
            return
        low = min(float(self.translations.min()), -1.0)
        high = max(float(self.translations.max()), 1.0)

        def point(frame, value):
            x = margin + (width - 2 * margin) * (frame / max(n_frames - 1, 1))
            y = height - margin - (height - 2 * margin) * ((value - low) / (high - low))
            return QPointF(x, y)

        painter.drawText(2, 12, f"{high:+.1f} px")
        painter.drawText(2, height - 4, f"{low:+.1f} px   frames 0-{n_frames - 1}")
        painter.setPen(QPen(QColor(90, 90, 90), 1, Qt.PenStyle.DashLine))
        painter.drawLine(point(0, 0.0), point(n_frames - 1, 0.0))
        for column, color in ((0, QColor(255, 160, 40)), (1, QColor(60, 200, 255))):
            painter.setPen(QPen(color, 2))
            painter.drawPolyline(QPolygonF([point(f, v) for f, v in
                                            enumerate(self.translations[:, column])]))
        painter.end()


class AlignFramesWidget(Container):
    """Correct the drift between frames of one file and sum the aligned frames.

    Translations are inferred on one detector (default 12C 14N when present, else the
    strongest ion detector) with the seed's whole-pixel method or sub-pixel
    registration, and applied to every detector of the file. Adds
    ``"<stem> <label> (aligned)"`` stacks and ``"<stem> <label> (aligned sum)"`` images.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        remembered = {**DEFAULTS, **load_parameters(SECTION)}
        self.file = ComboBox(label="file", choices=self._file_choices, nullable=True)
        self.detector = ComboBox(label="align on", choices=self._detector_choices,
                                 nullable=True)
        method = next((k for k, v in METHODS.items() if v == remembered["method"]),
                      "whole pixel (openformat)")
        self.method = ComboBox(label="method", choices=list(METHODS), value=method)
        self.upsample_factor = SpinBox(label="upsample factor", min=1, max=200,
                                       value=remembered["upsample_factor"],
                                       tooltip="sub-pixel precision is 1 / factor pixel")
        self.padding = SpinBox(label="padding (px)", min=0, max=256,
                               value=remembered["padding"],
                               tooltip="zeros around each frame while shifting, pixels")
        self.use_cleaned = CheckBox(label="use cleaned layers when present",
                                    value=remembered["use_cleaned"])
        self.run_button = PushButton(text="Align frames")
        self.cancel_button = PushButton(text="Cancel")
        self.progress = ProgressBar(label="progress")
        self.summary = Label(label="drift", value="-")
        self.extend([self.file, self.detector, self.method, self.upsample_factor, self.padding,
                     self.use_cleaned, self.run_button, self.cancel_button, self.progress,
                     self.summary])
        self.plot = DriftPlot()
        self.native.layout().addWidget(self.plot)
        self._runner = WorkerRunner(self.run_button, self.cancel_button, self.progress)
        # Until the user picks a detector, follow the default as layers arrive.
        self._detector_is_default = True
        self._setting_detector = False
        self.detector.changed.connect(self._detector_changed)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self._runner.cancel)
        self.file.changed.connect(self._file_changed)
        for widget in (self.method, self.upsample_factor, self.padding, self.use_cleaned):
            widget.changed.connect(self._save)
        self.method.changed.connect(self._method_changed)
        viewer.layers.events.inserted.connect(self._refresh_files)
        viewer.layers.events.removed.connect(self._refresh_files)
        self.native.destroyed.connect(self._runner.cancel)
        self._refresh_files()
        self._method_changed()

    def _file_choices(self, _widget=None):
        return file_choices(self._viewer)

    def _detector_choices(self, _widget=None):
        path = self.file.value if hasattr(self, "file") else None
        if path is None:
            return []
        return [(layer.metadata["nanosims"]["label"], index)
                for index, layer in detector_layers(self._viewer, path).items()]

    def _refresh_files(self, _event=None) -> None:
        select_first_file(self.file)
        self._file_changed()

    def _detector_changed(self, _value=None) -> None:
        if not self._setting_detector:
            self._detector_is_default = False

    def _file_changed(self, _value=None) -> None:
        previous = self.detector.value
        self._setting_detector = True
        try:
            self.detector.reset_choices()
            keep = (not self._detector_is_default and previous is not None
                    and previous in self.detector.choices)
            self.detector.value = previous if keep else self.default_detector()
        finally:
            self._setting_detector = False

    def default_detector(self):
        """12C 14N when present, else the ion detector with the most counts in frame 0."""
        path = self.file.value
        if path is None:
            return None
        layers = detector_layers(self._viewer, path)
        if not layers:
            return None
        header = next(iter(layers.values())).metadata["nanosims"]["header"]
        ions = {k: v for k, v in layers.items() if k != header.get("se_index")} or layers
        for index, layer in ions.items():
            if "".join(layer.metadata["nanosims"]["label"].split()) == "12C14N":
                return index
        return max(ions, key=lambda k: float(np.asarray(ions[k].data[0]).sum()))

    def _method_changed(self, _value=None) -> None:
        self.upsample_factor.enabled = METHODS[self.method.value] == "subpixel"

    def _save(self, _value=None) -> None:
        save_parameters(SECTION, dict(method=METHODS[self.method.value],
                                      upsample_factor=int(self.upsample_factor.value),
                                      padding=int(self.padding.value),
                                      use_cleaned=bool(self.use_cleaned.value)))

    def _source_layers(self, path):
        """Per detector: the cleaned layer when asked for and present, else the raw one."""
        layers = detector_layers(self._viewer, path)
        if self.use_cleaned.value:
            layers.update(detector_layers(self._viewer, path, KIND_CLEANED))
        return layers

    def run(self, _value=None):
        """Start the alignment in a worker; returns the worker (None if not started)."""
        from napari.utils.notifications import show_warning

        path, index = self.file.value, self.detector.value
        if path is None or index is None:
            show_warning("Open a NanoSIMS .im file and choose a detector to align on.")
            return None
        layers = self._source_layers(path)
        method = METHODS[self.method.value]
        padding = int(self.padding.value)
        upsample = int(self.upsample_factor.value)
        reference = layers[index].data
        stack = FrameStack([layer.data for layer in layers.values()])
        n_frames = stack.shape[0]
        total = translation_steps(n_frames, method) + n_frames
        params = dict(method=method, upsample_factor=upsample, padding=padding,
                      alignment_detector=layers[index].metadata["nanosims"]["label"],
                      used_cleaned=any(layer.metadata["nanosims"].get("kind") == KIND_CLEANED
                                       for layer in layers.values()))
        return self._runner.start(
            _align, reference, stack, method, upsample, padding, total=total,
            description=f"Aligning frames: {Path(path).name}",
            on_returned=lambda result: self._add_layers(layers, params, *result))

    def _add_layers(self, layers, params, translations, aligned) -> None:
        entry = {"step": "align_frames", "params": params,
                 "translations_px": np.asarray(translations).tolist()}
        try:
            for position, layer in enumerate(layers.values()):
                stack = aligned[:, position]
                add_or_update_layer(self._viewer, layer, stack, KIND_ALIGNED, entry)
                add_or_update_layer(self._viewer, layer, stack.sum(axis=0), KIND_SUM, entry,
                                    two_d=True)
        except RuntimeError:  # the viewer was closed while the worker ran
            return
        self.plot.set_translations(translations)
        span = np.ptp(np.asarray(translations, dtype=float), axis=0)
        self.summary.value = f"range y {span[0]:.2f} px, x {span[1]:.2f} px"


def _align(reference, stack, method, upsample_factor, padding):
    """Worker job: infer translations on ``reference``, apply them to ``stack``, crop."""
    translations = yield from iter_infer_translations(
        reference, padding=padding, method=method, upsample_factor=upsample_factor)
    shifted = yield from iter_apply_translations(stack, translations, padding=padding)
    height, width = stack.shape[2:]
    aligned = shifted[:, :, padding:padding + height, padding:padding + width]
    if aligned.dtype == np.float64:
        aligned = aligned.astype(np.float32)  # counts after sub-pixel shifts; halves memory
    return translations, aligned
