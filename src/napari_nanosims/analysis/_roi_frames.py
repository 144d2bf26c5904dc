"""Where the per-frame ROI sums come from: each ROI mapped back into the frames as they
were before alignment, so that the sums are exact counts."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..model import Acquisition
from .accumulate import has_fractional_shifts, stage_before_alignment

# -- where the per-frame ROI sums come from ---------------------------------------------
# The detector corrections: once one ran, the counts are no longer Poisson counts, and the
# dispersion test needs the raw counts kept beside them.
_CORRECTIONS = ("correct_dead_time", "subtract_em_background", "correct_qsa",
                "correct_em_yield")


@dataclasses.dataclass(frozen=True)
class _FramePlan:
    """Which frames of which acquisition to read, and where the ROIs sit in them.

    ``frames[i]`` is the frame of ``acquisition`` read for the i-th selected frame;
    ``shifts[i]`` (rows, columns), whole pixels, is how far its content moved on the way
    to the aligned image (None: the ROIs sit where they were drawn). ``exact`` is True
    when the sums are of recorded pixels (unshifted, or moved by whole pixels) and the
    raw counts are known; ``reason`` says why not.
    """

    acquisition: Acquisition
    frames: np.ndarray
    shifts: np.ndarray | None
    exact: bool
    reason: str = ""


def _before_alignment(source: Acquisition):
    """(acquisition before alignment, its frame for each frame of ``source``, total
    translation of each frame of ``source``) or None when the counts cannot be traced back.

    Frames left out after alignment (``exclude_frames``, which records the positions it
    dropped) are followed; any step after alignment that changes counts (a correction
    after whole-pixel alignment, say) ends the trace, since the frames before alignment
    lack it. An acquisition aligned twice is traced through both alignments, adding the
    translations.
    """
    traced = stage_before_alignment(source)
    if traced is None or tuple(traced[0].shape[1:]) != tuple(source.shape[1:]):
        return None
    before, kept, _record = traced
    translations = np.asarray(source.translations, dtype=np.float64)
    deeper = _before_alignment(before)
    if deeper is not None:
        first, frames, moved = deeper
        return first, frames[kept], moved[kept] + translations
    return before, kept, translations


def _raw_known(acquisition: Acquisition) -> bool:
    """False when the counts were corrected but the raw counts were not kept."""
    return acquisition.raw_counts is not None or not any(
        acquisition.applied(name) for name in _CORRECTIONS)


def _subpixel_history(history) -> bool:
    """True when the steps include a sub-pixel alignment (interpolated counts)."""
    return any(record.name == "align_frames" and record.parameters.get("method") == "subpixel"
               for record in history)


def _frame_plan(source: Acquisition, selected) -> _FramePlan:
    selected = np.asarray(selected, dtype=np.int64)
    traced = _before_alignment(source) if source.translations is not None else None
    if traced is not None:
        first, frames, moved = traced
        # A raw pixel belongs to the ROI its centre lands in after the shift:
        # centre q + 0.5 + t falls in pixel q + floor(t + 0.5).
        shifts = np.floor(moved[selected] + 0.5).astype(np.int64)
        plan = _FramePlan(first, frames[selected], shifts, True)
        if first.translations is not None and has_fractional_shifts(first.translations):
            plan = dataclasses.replace(plan, exact=False, reason=(
                "the earliest frames that could be traced back were already shifted by "
                "fractions of a pixel (interpolated counts)"))
    elif source.translations is not None and has_fractional_shifts(source.translations):
        plan = _FramePlan(source, selected, None, False,
                          "the ROI sums are of frames shifted by fractions of a pixel "
                          "(interpolated counts): the frames before alignment are not "
                          "available, or the counts were changed after alignment")
    elif source.translations is None and _subpixel_history(source.history):
        plan = _FramePlan(source, selected, None, False,
                          "the history has a sub-pixel alignment but the acquisition holds "
                          "neither its translations nor the frames before it, so the ROI "
                          "sums are of interpolated counts")
    else:
        plan = _FramePlan(source, selected, None, True)
    if plan.exact and not _raw_known(plan.acquisition):
        plan = dataclasses.replace(plan, exact=False, reason=(
            "the counts were corrected but the raw counts were not kept, so the dispersion "
            "test treats corrected counts as Poisson counts"))
    return plan


def _shift_labels(labels: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """The ROI of each pixel of a frame whose content moved by (rows, columns) to the
    labelled image: ``out[q] = labels[q + shift]``, 0 where ``q + shift`` is outside.

    No wrapping: pixels whose content left the field belong to no ROI.
    """
    height, width = labels.shape
    out = np.zeros_like(labels)
    if abs(rows) >= height or abs(columns) >= width:
        return out
    out[max(0, -rows):height - max(0, rows), max(0, -columns):width - max(0, columns)] = \
        labels[max(0, rows):height - max(0, -rows), max(0, columns):width - max(0, -columns)]
    return out


def _frame_sums(plan: _FramePlan, labels: np.ndarray, n: int, indices):
    """Per frame, channel and ROI: (counts, variances, raw counts), each (frames, channels, n).

    Pixels whose (corrected) count is not finite count 0 in all three.
    """
    acquisition = plan.acquisition
    indices = np.asarray(indices, dtype=np.int64)
    shape = (len(plan.frames), len(indices), n)
    counts, variances, raw = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    offsets = (np.arange(len(indices)) * n)[:, None]

    def in_rois(array, frame, pixels):
        """(channels, pixels) values of one frame at the given flat pixel indices."""
        values = np.asarray(array[frame], dtype=np.float64)[indices]
        return values.reshape(len(indices), -1)[:, pixels]

    for row, frame in enumerate(plan.frames):
        frame_labels = labels if plan.shifts is None else _shift_labels(labels,
                                                                        *plan.shifts[row])
        inside = np.flatnonzero(frame_labels)
        # one bincount per quantity for all channels: bin = channel * n + roi - 1
        bins = (frame_labels.ravel()[inside] - 1)[None, :] + offsets
        value = in_rois(acquisition.counts, frame, inside)
        finite = np.isfinite(value)
        variance = (in_rois(acquisition.variance, frame, inside)
                    if acquisition.variance is not None else value)
        recorded = (in_rois(acquisition.raw_counts, frame, inside)
                    if acquisition.raw_counts is not None else value)
        for out, values in ((counts, value), (variances, variance), (raw, recorded)):
            values = np.where(finite & np.isfinite(values), values, 0.0)
            out[row] = np.bincount(bins.ravel(), weights=values.ravel(),
                                   minlength=len(indices) * n).reshape(len(indices), n)
    return counts, variances, raw
