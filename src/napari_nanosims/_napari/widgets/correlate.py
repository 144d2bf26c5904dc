"""The "Correlate" tab: register an external image (EM, FISH, confocal, Raman) to a
NanoSIMS file by numbered landmark pairs, refine it by mutual information, overlay it in
µm without resampling, save or load the registration, and turn a Labels layer on the
external image into NanoSIMS ROIs that the ROIs tab measures."""

from __future__ import annotations

import math
from importlib.util import find_spec
from pathlib import Path

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton

from ...correlate.registration import MIN_PAIRS, ImageRegistration, register_images
from ...steps.progress import Progress
from ..correlate_layers import (
    MODEL,
    PIXEL_SIZE,
    SUM_OF_IONS,
    as_plane,
    complete,
    displayed_matrix,
    external_choices,
    fit_pairs,
    format_um,
    grid_of_layer,
    grid_off,
    image_shape,
    labels_choices,
    layer_affine,
    pairs_text,
    pixel_size_from_layer,
    reference_choices,
    reference_layer,
    reference_stacks,
    refinement_text,
    sum_frames,
)
from ..lookups import layer_file, nanosims_info
from ._base import FileWidget
from ._common import reset_in_order
from ._controls import control_for
from ._landmarks import FIXED, MOVING, Landmarks


def _row(*widgets) -> Container:
    row = Container(layout="horizontal", labels=False, widgets=list(widgets))
    row.margins = (0, 0, 0, 0)
    return row


class CorrelateWidget(FileWidget):
    """Correlate an external image layer with the chosen file.

    **Pick landmarks** puts the external image beside the NanoSIMS reference (a
    translation, in µm) and adds two Points layers; clicks alternate between them and
    each pair gets a number and its residual. **Apply** sets the image's ``affine`` to
    the registration (its own pixels are kept) so that it overlays the NanoSIMS layers.
    Run (**Refine**) refines it by mutual information in a worker. **ROIs from this
    layer** carries a Labels layer on the image onto the NanoSIMS grid and has the ROIs
    tab (``rois``) measure it.
    """

    def __init__(self, viewer: napari.viewer.Viewer, rois=None):
        super().__init__(viewer, "Refine")
        self.rois = rois
        self.reference = ComboBox(label="reference", choices=self._reference_choices,
                                  nullable=True, tooltip="the NanoSIMS image the pairs are "
                                  "clicked on: SE, a mass or the sum of the ion masses")
        self.image = ComboBox(label="image", choices=self._image_choices, nullable=True,
                              tooltip="the external image layer (EM, FISH, confocal, "
                                      "Raman; opened by any reader), 2-D or RGB")
        self.pixel_size = control_for(PIXEL_SIZE)
        self.pixel_size.native.setDecimals(5)
        self.model = control_for(MODEL)
        self.pick_button = PushButton(text="Pick landmarks")
        self.pick_button.tooltip = "the image beside; click each feature on both in turn"
        self.delete_button = PushButton(text="Delete pair")
        self.delete_button.tooltip = "the pairs of the selected points (none: the last pair)"
        self.apply_button = PushButton(text="Apply")
        self.apply_button.tooltip = "fit the model and overlay the image (affine, no resampling)"
        self.save_button = PushButton(text="Save registration...")
        self.save_button.tooltip = "the applied registration as JSON"
        self.load_button = PushButton(text="Load registration...")
        self.load_button.tooltip = "a saved registration (JSON) of the chosen image"
        self.labels_layer = ComboBox(
            label="labels", choices=self._labels_choices, nullable=True,
            tooltip="a Labels layer on the image's pixels (cells segmented on FISH...)")
        self.values_are_classes = CheckBox(text="values are classes", value=False,
                                           tooltip="each region of one value is an ROI, "
                                                   "the value its class (else each value "
                                                   "is an ROI; classes: a 'class' feature)")
        self.rois_button = PushButton(text="ROIs from this layer")
        self.pairs_note = Label(value="")
        self.summary = Label(value="")
        self._lay_out(controls=[self.file, self.reference, self.image, self.pixel_size,
                                self.model, _row(self.pick_button, self.delete_button),
                                self.apply_button, _row(self.save_button, self.load_button),
                                self.labels_layer, self.values_are_classes, self.rois_button],
                      results=[self.pairs_note, self.summary])
        self.registration: ImageRegistration | None = None
        self._reference_auto = False  # the reference was chosen by the tab, not the user
        self._registered_image = None
        self._picking = False
        self._pixel = 0.0
        self._note = ""  # what the overlay cannot show (projective models)
        self.landmarks = Landmarks(self)
        self.pick_button.changed.connect(lambda _v=None: self.pick_landmarks())
        self.delete_button.changed.connect(lambda _v=None: self.delete_pair())
        self.apply_button.changed.connect(lambda _v=None: self.apply())
        self.save_button.changed.connect(lambda _v=None: self.save_registration())
        self.load_button.changed.connect(lambda _v=None: self.load_registration())
        self.rois_button.changed.connect(lambda _v=None: self.rois_from_layer())
        self.image.changed.connect(self._image_chosen)
        self.reference.changed.connect(lambda _v=None: self._update_pairs())
        # a choice made in the drop-down (Qt's activated: the user's only) is kept
        self.reference.native.activated.connect(lambda _i: self._user_reference())
        self.pixel_size.changed.connect(self._pixel_changed)
        self.model.changed.connect(lambda _v=None: self._update_pairs())
        self.file.changed.connect(self._file_changed)
        self._connect()
        self._image_chosen(self.image.value)

    # -- choices ------------------------------------------------------------------------
    def _reference_choices(self, _widget=None):
        return reference_choices(self._viewer, getattr(self, "file", None) and self.file.value)

    def _image_choices(self, _widget=None):
        return external_choices(self._viewer)

    def _labels_choices(self, _widget=None):
        return labels_choices(self._viewer, getattr(self, "image", None) and self.image.value)

    def _files_refreshed(self, previous=None) -> None:
        keys = [key for key in self.reference.choices if key is not None]
        if keys and (self.reference.value is None or self._reference_auto):
            # SE shows the shapes an EM image shows; without it, the ion masses' sum.
            # Chosen again as a file's layers arrive, until the user chooses.
            se = [key for key in keys if key >= 0 and nanosims_info(reference_layer(  # type: ignore[union-attr]
                self._viewer, self.file.value, key)).get("detector") == "SE"]
            with self.reference.changed.blocked():
                self.reference.value = se[0] if se else (
                    SUM_OF_IONS if SUM_OF_IONS in keys else keys[0])
            self._reference_auto = True
        if self.registration is not None and self._registered_image not in self._viewer.layers:
            self.registration, self._registered_image = None, None
        self._update_pairs()

    def _file_changed(self, _value=None) -> None:
        self._reference_auto = True
        reset_in_order(self.reference)
        self._files_refreshed()

    def _user_reference(self) -> None:
        self._reference_auto = False

    def _grid(self):
        """(shape, pixel µm, translate µm) of the reference, or None."""
        if self.file.value is None or self.reference.value is None:
            return None
        layer = reference_layer(self._viewer, self.file.value, self.reference.value)
        return grid_of_layer(layer) if layer is not None else None

    def _image_chosen(self, layer=None) -> None:
        self._pixel = pixel_size_from_layer(layer) or 0.0 if layer is not None else 0.0
        with self.pixel_size.changed.blocked():
            self.pixel_size.value = self._pixel
        self._picking = False
        self._update_pairs()

    def _pixel_changed(self, value=None) -> None:
        """The points stay on the image's features: the image's landmarks (µm) follow
        the new pixel size; a registration of the old size is dropped."""
        value = float(value or 0.0)
        if self._pixel > 0 and value > 0:
            self.landmarks.rescale_image_points(value / self._pixel)
        self._pixel = value
        if self._current_registration() is not None:
            self.registration, self._registered_image = None, None
            self.summary.value = "Pixel size changed: Apply again."
        if self._picking and value > 0:
            self._place_external(beside=True)
        self._update_pairs()

    # -- landmark pairs -------------------------------------------------------------------
    def pairs(self) -> dict:
        """pair number -> (NanoSIMS (y, x) µm or None, image (y, x) µm or None)."""
        return self.landmarks.pairs()

    def add_pair(self, nanosims_um, image_um) -> int:
        """Add one pair ((y, x) µm on the reference and on the image); its number."""
        return self.landmarks.add_pair(nanosims_um, image_um)

    def delete_pair(self, numbers=None) -> list[int]:
        """Delete pairs: ``numbers``, else those of the selected points, else the last."""
        return self.landmarks.delete(numbers)

    def _fit(self):
        grid, image = self._grid(), self.image.value
        if grid is None or image is None:
            return None, "choose a file, its reference and an image"
        if self._pixel <= 0:
            return None, "set the image's pixel size (µm)"
        return fit_pairs(self.pairs(), self.model.value, grid[:2], image_shape(image),
                         self._pixel)

    def _update_pairs(self) -> None:
        if self._closed:
            return
        pairs = self.pairs()
        self.landmarks.number_new_points(pairs)
        registration, why = self._fit()
        self.pairs_note.value = pairs_text(pairs, self.model.value, registration, why)

    # -- picking and applying ------------------------------------------------------------
    def _ready(self) -> bool:
        if self.file.value is None or self._grid() is None:
            self.summary.value = "Open a NanoSIMS .im file first."
        elif self.image.value is None:
            self.summary.value = "Open the external image (any reader) and choose it."
        elif self._pixel <= 0:
            self.summary.value = "Enter the image's pixel size (µm) first."
        else:
            return True
        return False

    def pick_landmarks(self) -> bool:
        """Show the image beside the reference and start clicking pairs."""
        if not self._ready():
            return False
        self._picking = True
        fixed = self.landmarks.layer(FIXED, True)
        self.landmarks.layer(MOVING, True)
        self._place_external(beside=True)
        grid_off(self._viewer)
        self._viewer.reset_view()
        self._viewer.layers.selection.active = fixed
        fixed.mode = "add"
        self.summary.value = (f"Click a feature on NanoSIMS (left), then the same on "
                              f"{self.image.value.name} (right); pairs are numbered. Drag "
                              "points to move them. Then Apply.")
        self._update_pairs()
        return True

    def _current_registration(self):
        image = self.image.value
        return self.registration if image is not None and image is self._registered_image \
            else None

    def _place_external(self, beside: bool) -> str:
        """Beside the reference (picking) or on it (the registration's affine)."""
        image, moving = self.image.value, self.landmarks.layer(MOVING)
        shape, pixel, translate = self._grid()
        layers = [image] + [self.labels_layer.value] * (self.labels_layer.value is not None)
        note = ""
        if beside:
            edges = [layer.extent.world[1][-1] for layer in self._viewer.layers
                     if layer_file(layer) is not None and layer.ndim >= 2]
            offset = (translate[0], max(edges, default=0.0) + 0.05 * shape[1] * pixel)
            affine, shift = np.eye(3), offset
        else:
            matrix, note = displayed_matrix(self.registration)  # type: ignore[arg-type]  # not None
            affine, shift = layer_affine(matrix, translate), (0.0, 0.0)
        for layer in layers:
            layer.scale = (self._pixel, self._pixel)
            layer.units = ("µm", "µm")
            layer.affine = affine
            layer.translate = shift
        if moving is not None:
            moving.affine, moving.translate = affine, shift
        return note

    def apply(self) -> ImageRegistration | None:
        """Fit the model to the pairs and overlay the image (``affine``, no resampling)."""
        if not self._ready():
            return None
        registration, why = self._fit()
        if registration is None:
            self.summary.value = f"Not applied: {why}."
            return None
        self._set_registration(registration)
        n = len(complete(self.pairs())[0])
        loo = registration.loo_um
        loo_text = f", leave-one-out {format_um(loo)} µm" if math.isfinite(loo) else ""
        self.summary.value = (f"Applied: {registration.model}, {n} pairs; rms "
                              f"{format_um(registration.rms_um)} µm{loo_text}"
                              + f". {self._note}".rstrip(". ") + ".")
        return registration

    def _set_registration(self, registration) -> None:
        self.registration, self._registered_image = registration, self.image.value
        self._picking = False
        self._note = self._place_external(beside=False)
        grid_off(self._viewer)
        image = self.image.value
        if image.opacity == 1.0:  # the NanoSIMS layers show through
            image.opacity = 0.6
        self.landmarks.set_mode("pan_zoom")
        self._viewer.reset_view()

    # -- refinement (the worker) -----------------------------------------------------------
    def run(self, _value=None):
        """Refine by mutual information in a worker, from the pairs' fit (or the images'
        centres without pairs); returns the worker."""
        if not self._ready():
            return None
        model = self.model.value
        if find_spec("SimpleITK") is None:
            self.summary.value = ("Refining needs SimpleITK: pip install "
                                  "'napari-nanosims[correlate]'.")
            return None
        if model == "projective":
            self.summary.value = "Refining works with translation to affine, not projective."
            return None
        numbers, landmarks = complete(self.pairs())
        landmarks = landmarks if len(numbers) >= MIN_PAIRS[model] else None
        stacks = reference_stacks(self._viewer, self.file.value, self.reference.value)
        image = self.image.value
        data, rgb = image.data[0] if image.multiscale else image.data, image.rgb
        _, fixed_pixel, _ = self._grid()
        moving_pixel = self._pixel

        def job():
            yield Progress("refine", 0, 2)
            fixed, moving = sum_frames(stacks), as_plane(data, rgb)
            yield Progress("refine", 1, 2)
            registration = register_images(fixed, moving, fixed_pixel_um=fixed_pixel,
                                           moving_pixel_um=moving_pixel,
                                           landmarks=landmarks, model=model,
                                           refine="intensity")
            yield Progress("refine", 2, 2)
            return registration, image

        self.summary.value = "Refining by mutual information..."
        return self._runner.start(job(), description="Refining the registration",
                                  on_returned=self._refined)

    def _refined(self, returned) -> None:
        registration, image = returned
        if self._closed or image is not self.image.value:
            return
        self._set_registration(registration)
        self.summary.value = (refinement_text(registration)
                              + f" rms {format_um(registration.rms_um)} µm. {self._note}").strip()

    # -- files --------------------------------------------------------------------------
    def save_registration(self, path=None, overwrite: bool = False) -> Path | None:
        """Write the applied registration as JSON; a given ``path`` that exists is kept
        unless ``overwrite`` (the dialog asks itself)."""
        registration = self._current_registration()
        if registration is None:
            self.summary.value = "Apply (or Refine) a registration first."
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(self.native, "Save registration",
                                                  "registration.json", "JSON (*.json)")
            if not path:
                return None
            overwrite = True  # the dialog has asked already
        try:
            registration.save(path, overwrite=overwrite)
        except (OSError, ValueError) as exc:
            self.summary.value = f"Not saved: {exc}"
            return None
        self.summary.value = f"Registration saved: {Path(path).name}"
        return Path(path)

    def load_registration(self, path=None) -> ImageRegistration | None:
        """Read a saved registration for the chosen image and reference; apply it."""
        if self.file.value is None or self._grid() is None or self.image.value is None:
            self.summary.value = "Choose the file, its reference and the image first."
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(self.native, "Load registration", "",
                                                  "JSON (*.json)")
            if not path:
                return None
        try:
            registration = ImageRegistration.load(path)
        except (OSError, ValueError) as exc:
            self.summary.value = f"Not loaded: {exc}"
            return None
        image, (shape, pixel, _) = self.image.value, self._grid()
        if tuple(registration.moving_shape) != image_shape(image):
            self.summary.value = (f"Not loaded: it registers an image of "
                                  f"{tuple(registration.moving_shape)} pixels; "
                                  f"{image.name} has {image_shape(image)}.")
            return None
        if tuple(registration.fixed_shape) != shape or not math.isclose(
                registration.fixed_pixel_um, pixel, rel_tol=1e-6):
            self.summary.value = ("Not loaded: it was made on a NanoSIMS image of "
                                  f"{tuple(registration.fixed_shape)} pixels of "
                                  f"{registration.fixed_pixel_um:.4g} µm, not this one.")
            return None
        with self.pixel_size.changed.blocked():
            self.pixel_size.value = registration.moving_pixel_um
        self._pixel = float(registration.moving_pixel_um)
        with self.model.changed.blocked():
            self.model.value = registration.model
        if registration.landmarks is not None:
            self.landmarks.set_pairs(registration.landmarks)
        self._set_registration(registration)
        self._update_pairs()
        self.summary.value = (f"Loaded {Path(path).name}: {registration.model}, rms "
                              f"{format_um(registration.rms_um)} µm. {self._note}").strip()
        return registration

    # -- ROIs -----------------------------------------------------------------------------
    def rois_from_layer(self):
        """The chosen Labels layer (on the image) as ROIs on the NanoSIMS grid, with
        their classes; the ROIs tab is set to them and measures. Returns the layer."""
        from ._correlate_rois import rois_from_layer

        return rois_from_layer(self)
