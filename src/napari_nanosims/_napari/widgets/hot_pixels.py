"""The "Remove hot pixels" dock widget."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import napari.viewer
from magicgui.widgets import (CheckBox, ComboBox, Container, FloatSlider, FloatSpinBox, Label,
                              ProgressBar, PushButton, SpinBox)

from ...processing._frames import FrameStack
from ...processing.hot_pixels import (HotPixelBlindSpotWarning, iter_infer_hot_pixels,
                           iter_remove_hot_pixels)
from ._common import (KIND_CLEANED, WorkerRunner, add_or_update_layer, detector_layers,
                      file_choices, load_parameters, save_parameters, select_first_file)

SECTION = "remove_hot_pixels"
DEFAULTS = dict(num_outliers=3, kernel_size=3, outlier_factor=1.999, min_count=0.5,
                max_repeat_fraction=0.1, num_nonzero=0)


class HotPixelWidget(Container):
    """Remove correlated-noise hot pixels from all detectors of one file.

    The parameters are those of :func:`napari_nanosims.remove_hot_pixels` with its
    defaults (``num_nonzero`` 0 means all detectors). A live count shows how many pixels
    the current parameters flag per frame, optionally as a points layer. Run adds
    ``"<stem> <label> (cleaned)"`` layers; the originals are never modified.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self._viewer = viewer
        remembered = {**DEFAULTS, **load_parameters(SECTION)}
        self.file = ComboBox(label="file", choices=self._file_choices, nullable=True)
        self.num_outliers = SpinBox(label="num_outliers", min=1, max=60,
                                    value=remembered["num_outliers"],
                                    tooltip="detectors that must flag a pixel in the same frame")
        self.kernel_size = SpinBox(label="kernel_size (px)", min=1, max=15, step=2,
                                   value=remembered["kernel_size"],
                                   tooltip="median filter window, pixels")
        self.outlier_factor = FloatSlider(label="outlier_factor", min=1.0, max=10.0, step=0.001,
                                          value=remembered["outlier_factor"],
                                          tooltip="outlier when count >= factor x local median")
        self.min_count = FloatSpinBox(label="min_count (counts)", min=0.0, max=100.0, step=0.1,
                                      value=remembered["min_count"],
                                      tooltip="floor of the local median in that test")
        self.max_repeat_fraction = FloatSlider(
            label="max_repeat_fraction", min=0.01, max=1.0, step=0.01,
            value=remembered["max_repeat_fraction"],
            tooltip="pixels flagged in this fraction of frames or more are real features")
        self.num_nonzero = SpinBox(label="num_nonzero (0 = all)", min=0, max=60,
                                   value=remembered["num_nonzero"],
                                   tooltip="detectors in which a hot pixel must be non-zero")
        self.show_points = CheckBox(label="show flagged pixels", value=False)
        self.count_label = Label(label="flagged", value="-")
        self.run_button = PushButton(text="Remove hot pixels")
        self.cancel_button = PushButton(text="Cancel")
        self.progress = ProgressBar(label="progress")
        self.extend([self.file, self.num_outliers, self.kernel_size, self.outlier_factor,
                     self.min_count, self.max_repeat_fraction, self.num_nonzero,
                     self.show_points, self.count_label, self.run_button,
                     self.cancel_button, self.progress])
        self._runner = WorkerRunner(self.run_button, self.cancel_button, self.progress)
        self._preview = None
        self._preview_again = False
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self._runner.cancel)
        for widget in self._parameter_widgets():
            widget.changed.connect(self._parameters_changed)
        self.file.changed.connect(self._parameters_changed)
        self.show_points.changed.connect(self._parameters_changed)
        viewer.layers.events.inserted.connect(self._refresh_files)
        viewer.layers.events.removed.connect(self._refresh_files)
        self.native.destroyed.connect(self._runner.cancel)
        self._refresh_files()

    # -- inputs ---------------------------------------------------------------------
    def _file_choices(self, _widget=None):
        return file_choices(self._viewer)

    def _refresh_files(self, _event=None) -> None:
        select_first_file(self.file)

    def _parameter_widgets(self):
        return (self.num_outliers, self.kernel_size, self.outlier_factor, self.min_count,
                self.max_repeat_fraction, self.num_nonzero)

    def parameters(self) -> dict:
        """Current parameters as keyword arguments of ``remove_hot_pixels``."""
        return dict(num_outliers=int(self.num_outliers.value),
                    kernel_size=int(self.kernel_size.value),
                    outlier_factor=float(self.outlier_factor.value),
                    min_count=float(self.min_count.value),
                    max_repeat_fraction=float(self.max_repeat_fraction.value),
                    num_nonzero=int(self.num_nonzero.value) or None)

    def _ion_layers(self):
        """The chosen file's raw layers, split into ion detectors and the SE layer."""
        path = self.file.value
        if path is None:
            return path, {}, None
        layers = detector_layers(self._viewer, path)
        if not layers:
            return path, {}, None
        se_index = next(iter(layers.values())).metadata["nanosims"]["header"].get("se_index")
        ions = {k: v for k, v in layers.items() if k != se_index}
        return path, ions, layers.get(se_index) if se_index is not None else None

    def _stack(self, ions) -> FrameStack:
        return FrameStack([layer.data for layer in ions.values()])

    # -- live count -----------------------------------------------------------------
    def _parameters_changed(self, _value=None) -> None:
        save_parameters(SECTION, {**self.parameters(),
                                  "num_nonzero": int(self.num_nonzero.value)})
        self.update_preview()

    def update_preview(self):
        """Count flagged pixels per frame with the current parameters, in a worker."""
        from napari.qt.threading import create_worker

        path, ions, _ = self._ion_layers()
        if not ions:
            self.count_label.value = "-"
            return None
        if self._preview is not None:
            self._preview_again = True
            self._preview.quit()
            return None
        params = self.parameters()
        if params["num_outliers"] > len(ions):
            self.count_label.value = (f"num_outliers must be at most {len(ions)} "
                                      "(ion detectors in this file)")
            return None

        def count():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", HotPixelBlindSpotWarning)
                mask, _ = yield from iter_infer_hot_pixels(self._stack(ions),
                                                           keep_filtered="none", **params)
            return mask, [str(w.message) for w in caught]

        worker = create_worker(count, _start_thread=False)
        worker.returned.connect(lambda result, p=path: self._show_preview(p, *result))
        worker.finished.connect(self._preview_finished)
        self._preview = worker
        worker.start()
        return worker

    def _preview_finished(self) -> None:
        self._preview = None
        if self._preview_again:
            self._preview_again = False
            self.update_preview()

    def _show_preview(self, path, mask, messages) -> None:
        try:
            self._display_preview(path, mask, messages)
        except RuntimeError:  # the widget or the viewer was closed meanwhile
            pass

    def _display_preview(self, path, mask, messages) -> None:
        per_frame = mask.reshape(mask.shape[0], -1).sum(axis=1)
        shown = ", ".join(str(v) for v in per_frame[:12]) + (" ..." if per_frame.size > 12 else "")
        text = f"{int(per_frame.sum())} in {per_frame.size} frames ({shown})"
        if messages:
            text += " - too few frames: raise max_repeat_fraction"
        self.count_label.value = text
        self._update_points(path, mask)

    def _update_points(self, path, mask) -> None:
        name = f"{Path(path).stem} hot pixels"
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        if not self.show_points.value or not mask.any():
            return
        source = next(iter(detector_layers(self._viewer, path).values()))
        self._viewer.add_points(np.argwhere(mask), name=name, scale=tuple(source.scale),
                                units=tuple(str(u) for u in source.units),
                                axis_labels=tuple(source.axis_labels), size=3,
                                face_color="transparent", border_color="cyan",
                                metadata={"nanosims_overlay": path})

    # -- run ------------------------------------------------------------------------
    def run(self, _value=None):
        """Start removing hot pixels in a worker; returns the worker (None if not started)."""
        from napari.utils.notifications import show_warning

        path, ions, _ = self._ion_layers()
        if not ions:
            show_warning("Open a NanoSIMS .im file first (no file chosen).")
            return None
        params = self.parameters()
        if params["num_outliers"] > len(ions):
            show_warning(f"num_outliers ({params['num_outliers']}) is larger than the number "
                         f"of ion detectors ({len(ions)}) in {Path(path).name}.")
            return None
        stack = self._stack(ions)
        return self._runner.start(
            iter_remove_hot_pixels, stack, total=stack.shape[0],
            description=f"Removing hot pixels: {Path(path).name}",
            on_returned=lambda result: self._add_layers(ions, params, *result), **params)

    def _add_layers(self, ions, params, cleaned, mask) -> None:
        per_frame = mask.reshape(mask.shape[0], -1).sum(axis=1).tolist()
        entry = {"step": "remove_hot_pixels", "params": params,
                 "hot_pixels_total": int(sum(per_frame)), "hot_pixels_per_frame": per_frame}
        try:
            for position, layer in enumerate(ions.values()):
                add_or_update_layer(self._viewer, layer, cleaned[:, position], KIND_CLEANED,
                                    entry)
        except RuntimeError:  # the viewer was closed while the worker ran
            return
        self.count_label.value = f"{int(sum(per_frame))} replaced in {len(per_frame)} frames"
