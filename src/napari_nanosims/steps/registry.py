"""Every step by name (:data:`STEPS`), and the library's one-call forms of the frame steps."""

from __future__ import annotations

from ..model import Acquisition
from .analysis import RATIO, ROI_TABLE, SEGMENT
from .classes import CLASS_STEPS
from .corrections import CORRECTION_STEPS
from .correlate import CORRELATE_STEPS, IMPORT_ROIS
from .exports import EXPORT_STEPS
from .frames import (
    ALIGN_FRAMES,
    EXCLUDE_FRAMES,
    REMOVE_HOT_PIXELS,
    SUM_FRAMES,
    default_alignment_channel,
)

__all__ = ["STEPS", "clean_hot_pixels", "align_frames", "sum_frames",
           "default_alignment_channel", "import_rois"]

STEPS = {step.name: step for step in (REMOVE_HOT_PIXELS, *CORRECTION_STEPS, ALIGN_FRAMES,
                                      EXCLUDE_FRAMES, SUM_FRAMES, RATIO, SEGMENT,
                                      *CORRELATE_STEPS, ROI_TABLE,
                                      *CLASS_STEPS, *EXPORT_STEPS)}


def clean_hot_pixels(acquisition: Acquisition, **parameters) -> Acquisition:
    """Remove hot pixels of an acquisition's ion channels (see :data:`REMOVE_HOT_PIXELS`).

    Parameters are those of :func:`napari_nanosims.remove_hot_pixels`; the result has
    ``hot_pixels`` set and the step in its history. The input is not changed.
    """
    return REMOVE_HOT_PIXELS(acquisition, **parameters)


def align_frames(acquisition: Acquisition, **parameters) -> Acquisition:
    """Align the frames of an acquisition (see :data:`ALIGN_FRAMES` for the parameters).

    The result has the frames' original size, ``translations`` (frames, 2) in pixels and
    the step in its history. The input is not changed.
    """
    return ALIGN_FRAMES(acquisition, **parameters)


def sum_frames(acquisition: Acquisition) -> Acquisition:
    """Sum the frames of every channel into ``sums`` (masses, height, width)."""
    return SUM_FRAMES(acquisition)


def import_rois(acquisition: Acquisition, path, **parameters) -> Acquisition:
    """Take the ROIs of an ROI file as the acquisition's ROIs (see :data:`IMPORT_ROIS`):
    ``roi_labels`` and ``roi_classes`` set, the step in the history; a ``roi_table`` step
    then measures them with their classes. The input is not changed."""
    return IMPORT_ROIS(acquisition, path=path, **parameters)
