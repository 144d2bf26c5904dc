"""ROI files in the ROIs tab: import an ImageJ/OpenMIMS ROI set, a LANS ``cells.mat`` or a
painted mask as an ROI layer with its classes; export the measured ROIs for Fiji,
OpenMIMS or LANS. The reading and writing are the library's (``read_rois``,
``write_rois``); this module only asks for the file and puts the result in the viewer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..lookups import ROI_KEY

#: Metadata key of an imported ROI layer's classes ({roi: class}); the classes page
#: takes them when that layer is measured.
CLASSES_KEY = "nanosims_roi_classes"
IMPORT_FILTER = ("ROI files (*.zip *.roi *.mat *.png *.tif *.tiff);;ImageJ / OpenMIMS "
                 "(*.zip *.roi);;LANS (*.mat);;painted masks (*.png *.tif *.tiff)")
EXPORT_FILTER = "ImageJ / Fiji / OpenMIMS ROI set (*.zip);;LANS cells.mat (*.mat)"


def import_roi_file(tab, path=None):
    """Read an ROI file onto the chosen file's image as a new ROI layer, with its classes
    (OpenMIMS groups, ImageJ group numbers, a mask's colours); measure it at once.

    Returns the layer, or None (no file chosen, or the file was refused: the summary
    says why in one line).
    """
    from ...correlate.rois import read_rois

    image = tab._image_layer() if tab.file.value is not None else None
    if image is None:
        tab.summary.value = "Open a NanoSIMS .im file first (no file chosen)."
        return None
    if path is None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(tab.native, "Import ROIs", "", IMPORT_FILTER)
        if not path:
            return None
    shape = tuple(image.data.shape)[-2:]
    try:
        labels, classes = read_rois(path, (shape, float(image.scale[-1])))
    except (OSError, ValueError) as exc:  # ImFormatError is a ValueError
        tab.summary.value = f"Not imported: {exc}"
        return None
    name = f"imported ROIs · {Path(path).name}"
    layer = tab._viewer.add_labels(
        np.asarray(labels, np.int32), name=name,
        metadata={ROI_KEY: tab.file.value,
                  CLASSES_KEY: {int(roi): str(value) for roi, value in classes.items()}},
        **tab._geometry())
    tab.roi_layer.reset_choices()
    tab.roi_layer.value = layer
    n_rois = len(np.unique(labels[labels > 0]))
    tab.summary.value = (f"{n_rois} ROIs imported from {Path(path).name}"
                         + (f", {len(set(classes.values()))} classes" if classes else ""))
    return layer


def export_roi_file(tab, path=None, overwrite: bool = False):
    """Write the measured ROIs (and their classes) as an ImageJ ``.zip`` ROI set or a
    LANS ``.mat``; returns the file written, or None."""
    from ...export.roi_files import write_rois

    labels = tab._labels_image
    if labels is None:
        tab.summary.value = "Measure ROIs first: there are no ROIs to export."
        return None
    if path is None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(tab.native, "Export ROIs", "rois.zip",
                                              EXPORT_FILTER)
        if not path:
            return None
        overwrite = True  # the dialog has asked already
    try:
        written = write_rois(labels, path, dict(tab.classes.assigned) or None,
                             overwrite=overwrite)
    except (OSError, ValueError) as exc:
        tab.summary.value = f"Not exported: {exc}"
        return None
    tab.summary.value = f"ROIs written: {written}"
    return written
