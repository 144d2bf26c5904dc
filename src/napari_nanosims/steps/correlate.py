"""The correlative step: ROIs from a file of another program, optionally drawn on an
external image and carried onto the NanoSIMS grid by a saved registration.

In a batch every file finds its own files: ``{stem}`` in a name is the .im file's name
without ``.im``, and a relative name is relative to the .im file's folder (as
``classify``'s class image). A saved registration is only read (JSON numbers, checked);
nothing in it is executed.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model import Acquisition
from .parameters import Parameter, Step
from .progress import Progress

__all__ = ["IMPORT_ROIS", "CORRELATE_STEPS"]


def _beside(acquisition: Acquisition, text: str, what: str) -> Path:
    """The file ``text`` names for this acquisition ('{stem}' replaced; relative to its
    folder), or ValueError."""
    path = Path(text.replace("{stem}", acquisition.stem))
    if not path.is_absolute() and acquisition.path:
        path = Path(acquisition.path).resolve().parent / path
    if not path.is_file():
        raise ValueError(f"{acquisition.name}: {what} {os.fspath(path)} not found")
    return path


def _run_import_rois(acquisition: Acquisition, *, path, registration, min_area_px):
    from ..correlate.registration import ImageRegistration
    from ..correlate.rois import read_rois

    if not path:
        raise ValueError(f"{acquisition.name}: import_rois needs the ROI file (path)")
    yield Progress("import_rois", 0, 1)
    rois_file = _beside(acquisition, path, "ROI file")
    mapping = None
    if registration:
        mapping = ImageRegistration.load(_beside(acquisition, registration, "registration"))
    labels, classes = read_rois(rois_file, acquisition, registration=mapping,
                                min_area_px=min_area_px)
    yield Progress("import_rois", 1, 1)
    return acquisition.with_step(
        "import_rois", dict(path=path, registration=registration, min_area_px=min_area_px,
                            rois_found=int(len(set(labels[labels > 0].tolist()))),
                            rois_with_class=len(classes)),
        roi_labels=labels, roi_classes=classes or None, roi_statistics=None)


IMPORT_ROIS = Step(
    "import_rois", "ROIs from a file",
    "Take the ROIs (and their classes) from an ImageJ/Fiji/OpenMIMS .roi or .zip, a LANS "
    "cells.mat or a painted mask (PNG/TIFF: each region of one colour an ROI, the colour "
    "its class), instead of segmenting; with a saved registration when they were drawn "
    "on an external image (FISH, EM). A roi_table step after it measures them.",
    (Parameter("path", "", str, "the ROI file ('{stem}' = the file's name without .im; "
               "relative to the file's folder)", title="ROI file"),
     Parameter("registration", "", str, "registration JSON of the image the ROIs were "
               "drawn on (ImageRegistration.save; '{stem}' and folder as for the ROI "
               "file; empty: the ROIs are on the NanoSIMS pixels)"),
     Parameter("min_area_px", 4, int, "masks: smaller regions of one colour are dropped "
               "(anti-aliased edges)", unit="px", minimum=1, maximum=10**6,
               title="min area")),
    _run_import_rois)

CORRELATE_STEPS = (IMPORT_ROIS,)
