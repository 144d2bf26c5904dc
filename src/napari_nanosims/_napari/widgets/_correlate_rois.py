"""The Correlate tab's "ROIs from this layer": a Labels layer on the external image
carried onto the NanoSIMS grid (:func:`rois_from_labels`), added as an ROI layer of the
file, and measured at once by the ROIs tab."""

from __future__ import annotations

import numpy as np

from ..correlate_layers import (
    CLASSES_KEY,
    classes_of_labels_layer,
    reference_layer,
    rois_from_labels,
)
from ..lookups import nanosims_info
from .rois import ROI_KEY


def rois_from_layer(tab):
    """The chosen Labels layer (on the image) as ROIs on the NanoSIMS grid, with
    their classes; the ROIs tab is set to them and measures. Returns the layer."""
    registration, source = tab._current_registration(), tab.labels_layer.value
    if registration is None or source is None:
        tab.summary.value = ("Apply (or load) a registration of the image first."
                             if registration is None else
                             "Choose a Labels layer on the image's pixels first.")
        return None
    shape, pixel, translate = tab._grid()
    values_are_classes = bool(tab.values_are_classes.value)
    try:
        labels, classes = rois_from_labels(
            source.data[0] if source.multiscale else source.data, registration,
            (shape, pixel), values_are_classes=values_are_classes,
            classes=None if values_are_classes else classes_of_labels_layer(source))
    except ValueError as exc:
        tab.summary.value = f"No ROIs: {exc}"
        return None
    reference = reference_layer(tab._viewer, tab.file.value, tab.reference.value)
    stem = nanosims_info(reference).get("file_tag") or ""
    name = f"ROIs from {source.name} · {stem}"
    metadata = {ROI_KEY: tab.file.value,
                CLASSES_KEY: {str(roi): value for roi, value in classes.items()}}
    if name in tab._viewer.layers:
        layer = tab._viewer.layers[name]
        layer.data, layer.metadata = labels, metadata
    else:
        layer = tab._viewer.add_labels(labels, name=name, metadata=metadata,
                                       scale=(pixel, pixel), translate=tuple(translate),
                                       units=tuple(str(u) for u in reference.units)[-2:],
                                       axis_labels=("y", "x"))
    count = len(np.unique(labels[labels > 0]))
    tab.summary.value = (f"{count} ROIs ({len(classes)} with a class) on the "
                         f"NanoSIMS pixels: {name}.")
    measure(tab, layer, classes)
    return layer


def measure(tab, layer, classes: dict) -> None:
    """Set the ROIs tab to ``layer`` and measure now; then give the ROIs their
    classes (the ROIs tab's class panel, when it has one)."""
    rois = tab.rois
    if rois is None:
        tab.summary.value += " Measure them in the ROIs tab."
        return
    if rois.file.value != tab.file.value:
        rois.file.value = tab.file.value
    # the ROIs tab's public controls: its layer chosen, then measured now (Run)
    rois.roi_layer.reset_choices()
    rois.roi_layer.value = layer
    worker = rois.run()
    panel = getattr(rois, "classes", None)
    if worker is not None and classes and hasattr(panel, "assigned"):
        def give(_result=None):
            panel.assigned.update({int(roi): str(name) for roi, name in classes.items()})
            panel.refresh()

        worker.returned.connect(give)
