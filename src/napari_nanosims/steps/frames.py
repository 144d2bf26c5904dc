"""The frame steps on an :class:`~napari_nanosims.model.Acquisition`: clean, align, exclude, sum.

Each step is defined once here (its parameters with defaults, bounds, units and help)
and used as it is by the library, recipes, the command line and the napari widgets.

Policy for files with few ion channels (the same everywhere): when ``num_outliers`` or
``num_nonzero`` exceed the number of ion channels, they are lowered to it with a
warning; a file with one ion channel is then cleaned on that channel alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..model import Acquisition, Channel, normalise_label
from ..model.acquisition import mass_stack
from ..processing._frames import FrameStack, release_freed_memory
from ..processing.alignment.alignment import (
    iter_apply_translations,
    iter_infer_translations,
    iter_register_frames,
    translation_steps,
)
from ..processing.alignment.moved import MovedFrames, moved_coverage
from ..processing.alignment.warp import iter_apply_displacements
from ..processing.hot_pixels.hot_pixels import iter_infer_hot_pixels, replace_hot_pixels
from .parameters import (
    ALIGN_PARAMETERS,
    EXCLUDE_PARAMETERS,
    HOT_PIXEL_PARAMETERS,
    MAX_UPSAMPLE_FACTOR,
    Step,
)
from .progress import Progress, counted

__all__ = ["HOT_PIXEL_PARAMETERS", "ALIGN_PARAMETERS", "REMOVE_HOT_PIXELS",
           "EXCLUDE_FRAMES", "parse_frames", "ALIGN_FRAMES", "SUM_FRAMES",
           "default_alignment_channel", "MAX_UPSAMPLE_FACTOR"]

# -- hot pixels ------------------------------------------------------------------------
def effective_hot_pixel_parameters(acquisition: Acquisition, parameters: dict) -> dict:
    """``parameters`` with num_outliers and num_nonzero lowered to the ion channels present.

    Warns (UserWarning) when something was lowered: the one policy of the library, the
    command line and the napari widget.
    """
    n_ions = len(acquisition.ion_channels)
    if n_ions == 0:
        raise ValueError(f"{acquisition.name}: no ion channel to clean (only SE)")
    used = dict(parameters)
    for name in ("num_outliers", "num_nonzero"):
        if used.get(name) is not None and used[name] > n_ions:
            warnings.warn(f"{acquisition.name}: {name}={used[name]} but the file has "
                          f"{n_ions} ion channel(s); using {name}={n_ions}", UserWarning,
                          stacklevel=3)
            used[name] = n_ions
    return used


def _run_remove_hot_pixels(acquisition: Acquisition, **parameters):
    if acquisition.raw_counts is not None:
        raise ValueError(f"{acquisition.name}: remove hot pixels before the detector "
                         "corrections; its thresholds are in raw counts")
    if acquisition.translations is not None or acquisition.sums is not None:
        raise ValueError(f"{acquisition.name}: remove hot pixels before aligning or summing")
    used = effective_hot_pixel_parameters(acquisition, parameters)
    counts = acquisition.counts
    ions = [channel.index for channel in acquisition.ion_channels]
    stack = (FrameStack([mass_stack(counts, k) for k in ions])
             if len(ions) != counts.shape[1] else counts)
    mask, at_candidates = yield from counted(
        iter_infer_hot_pixels(stack, keep_filtered="candidates", **used),
        "remove_hot_pixels", counts.shape[0])
    cleaned = np.array(counts, copy=True)  # the one copy; SE stays raw
    replace_hot_pixels(cleaned, mask, at_candidates, detectors=ions)
    return acquisition.with_step(
        "remove_hot_pixels", {**used, "hot_pixels_total": int(mask.sum())},
        counts=cleaned, hot_pixels=mask)


REMOVE_HOT_PIXELS = Step(
    "remove_hot_pixels", "Remove hot pixels",
    "Replace correlated-noise hot pixels of the ion channels by their local median "
    "(openformat's method and results).", HOT_PIXEL_PARAMETERS, _run_remove_hot_pixels)


# -- alignment -------------------------------------------------------------------------
def default_alignment_channel(acquisition: Acquisition) -> str:
    """12C 14N when present, else the ion channel with the most counts in frame 0; only
    channels counted in every frame (peak switching counts some in some frames)."""
    for channel in acquisition.channels:
        if normalise_label(channel.label) == "12c14n" and channel.frames is None:
            return channel.label
    candidates: Sequence[Channel] = acquisition.ion_channels or acquisition.channels
    # Peak switching: only a channel counted in every frame can be aligned on.
    candidates = [c for c in candidates if c.frames is None] or [
        c for c in acquisition.channels if c.frames is None] or list(candidates)
    if acquisition.n_frames == 0:
        return candidates[0].label
    first = acquisition.counts[0]
    return max(candidates, key=lambda c: float(np.asarray(first[c.index]).sum())).label


class _SummedChannels:
    """The (frames, H, W) sum of several channels of a counts array, read frame by frame."""

    def __init__(self, counts, indices):
        self.counts, self.indices = counts, list(indices)
        self.shape = (counts.shape[0],) + tuple(counts.shape[2:])
        self.dtype = np.dtype(np.float64)
        self.ndim = 3

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            frame = np.asarray(self.counts[key])[self.indices].sum(axis=0, dtype=np.float64)
            return frame[rest] if rest else frame
        # Any other frame selection (a slice, even an empty one as the alignment's dtype
        # probe ``data[:0]``, a list, a mask), one frame at a time.
        frames = np.arange(self.shape[0])[key]
        out = np.empty((frames.size,) + self.shape[1:], np.float64)
        for at, frame in enumerate(frames):
            out[at] = self[int(frame)]
        return out[(slice(None),) + rest] if rest else out

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[:], dtype=dtype)


def _alignment_stack(acquisition: Acquisition, name: str):
    """The stack to align on and the label recorded for it."""
    if normalise_label(name) == "sum":
        ions = acquisition.ion_channels or acquisition.channels
        return _SummedChannels(acquisition.counts, [c.index for c in ions]), "sum"
    chosen = _alignment_channel(acquisition, name)
    return mass_stack(acquisition.counts, chosen.index), chosen.label


def _alignment_channel(acquisition: Acquisition, name: str):
    if name == "auto":
        name = default_alignment_channel(acquisition)
    try:
        channel = acquisition.channel(name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    if channel.frames is not None:
        every = ", ".join(c.label for c in acquisition.channels if c.frames is None)
        raise ValueError(f"{acquisition.name}: {channel.label} was counted in "
                         f"{len(channel.frames)} of {acquisition.n_frames} frames (peak "
                         f"switching), so it cannot align the others; align on a channel "
                         f"counted in every frame: {every or 'none'}")
    return channel


def _run_align_frames(acquisition: Acquisition, *, channel, method, upsample_factor, padding,
                      reference, region):
    n_frames, _, height, width = acquisition.shape
    if n_frames == 0:
        raise ValueError(f"{acquisition.name}: no frames to align")
    if padding > max(height, width):
        raise ValueError(f"padding must be at most the frame size ({max(height, width)} px) "
                         f"for {acquisition.name}; got {padding}")
    if reference is not None and reference >= n_frames:
        raise ValueError(f"reference must be a frame index below {n_frames}; got {reference}")
    if region is not None and method == "sequential":
        raise ValueError("region applies to method='subpixel' only")
    if reference is not None and method != "subpixel":
        raise ValueError("reference applies to method='subpixel' only")
    stack, aligned_on = _alignment_stack(acquisition, channel)
    counts = acquisition.counts
    registration: Any = None  # a registration result when the method makes one
    if method in ("subpixel", "piecewise"):
        total = translation_steps(n_frames, method, reference) + n_frames
        registration = yield from counted(iter_register_frames(
            stack, padding=padding, method=method, upsample_factor=upsample_factor,
            reference=reference, region=region), "align_frames", total)
        translations = registration.translations
    else:
        total = translation_steps(n_frames, method, reference) + n_frames
        translations = yield from counted(iter_infer_translations(
            stack, padding=padding, method=method), "align_frames", total)
    release_freed_memory()  # the registration's working memory, before the moved stack
    field = getattr(registration, "displacement_px", None)  # None: rigid methods
    if field is not None and not np.any(field):
        field = None  # rigid everywhere: the translations alone, as 'subpixel'
    grid = None if field is None else registration.displacement_grid_px
    shifted = yield from counted(
        iter_apply_translations(counts, translations, padding=padding, crop=True)
        if field is None else iter_apply_displacements(
            counts, translations, field, grid, crop=True),
        "align_frames", total, offset=total - n_frames)
    extra: dict[str, Any] = {}
    # What travels with the counts moves with them; nothing moved out of the frame wraps.
    # A sub-pixel shift makes each pixel a weighted sum sum_i w_i c_i of independent raw
    # pixels, with the variance sum_i w_i**2 Var(c_i): the variance moves with the
    # squared weights. Raw counts (variance None: Poisson, Var(c) = c) get theirs from
    # the counts, as the interpolated counts are no longer Poisson. Both are moved on
    # access (MovedFrames), from the unaligned arrays this acquisition keeps anyway: the
    # step adds one copy of the stack, the moved counts, not three.
    fractional = field is not None or not np.all(np.asarray(translations)
                                                  == np.round(translations))
    variance = acquisition.variance
    if variance is None and fractional:
        variance = counts
    if variance is not None:
        extra["variance"] = MovedFrames(variance, translations, variance=True,
                                        displacement_px=field, grid=grid)
    if acquisition.raw_counts is not None:
        extra["raw_counts"] = MovedFrames(acquisition.raw_counts, translations,
                                          displacement_px=field, grid=grid)
    extra["coverage"] = moved_coverage(translations, (height, width), displacement_px=field,
                                       grid=grid)
    if region is not None and not isinstance(region, str):
        region = f"mask of {int(np.count_nonzero(region))} px"  # the history holds text
    recorded = dict(channel=channel, method=method, upsample_factor=upsample_factor,
                    padding=padding, reference=reference, region=region, aligned_on=aligned_on)
    if registration is not None:
        recorded["flagged_frames"] = [int(f) for f in np.flatnonzero(registration.flagged)]
    return acquisition.with_step("align_frames", recorded, counts=shifted,
                                 translations=translations, registration=registration,
                                 unaligned=acquisition, **extra)


ALIGN_FRAMES = Step(
    "align_frames", "Align frames",
    "Infer the drift between frames on one channel and shift every channel to undo it; "
    "the frames keep their size.", ALIGN_PARAMETERS, _run_align_frames)


# -- leaving frames out -----------------------------------------------------------------
def parse_frames(text: str, n_frames: int) -> list[int]:
    """Frame numbers from ``'3, 7-9'`` (0-based, ranges inclusive); ValueError names the part."""
    chosen: set[int] = set()
    for part in (p.strip() for p in str(text or "").split(",")):
        if not part:
            continue
        try:
            first, _, last = part.partition("-")
            low, high = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"frames: {part!r} is not a frame number or a range like "
                             f"'7-9'") from None
        if not 0 <= low <= high < n_frames:
            raise ValueError(f"frames: {part!r} is outside 0-{n_frames - 1}")
        chosen.update(range(low, high + 1))
    return sorted(chosen)


def _run_exclude_frames(acquisition: Acquisition, *, frames, flagged):
    n_frames = acquisition.n_frames
    dropped = set(parse_frames(frames, n_frames))
    if flagged and acquisition.registration is not None:
        marked = acquisition.registration.flagged
        if marked.all():
            warnings.warn(f"{acquisition.name}: the alignment flagged every frame (nothing "
                          "in them registers: too few counts or no structure); none is left "
                          "out for that", UserWarning, stacklevel=2)
        else:
            dropped.update(int(f) for f in np.flatnonzero(marked))
    keep = [f for f in range(n_frames) if f not in dropped]
    if not keep:
        raise ValueError(f"{acquisition.name}: leaving out frames {sorted(dropped)} leaves "
                         "no frame")
    yield Progress("exclude_frames", 0, 1)
    changes: dict[str, Any] = {}
    if dropped:
        index = np.asarray(keep)
        changes["counts"] = np.asarray(acquisition.counts[index])
        for name in ("variance", "raw_counts", "coverage", "translations", "hot_pixels"):
            values = getattr(acquisition, name)
            if isinstance(values, MovedFrames):  # stays lazy: no copy of the stack
                changes[name] = values.select_frames(index)
            elif values is not None:
                changes[name] = np.asarray(values[index])
    yield Progress("exclude_frames", 1, 1)
    return acquisition.with_step("exclude_frames", dict(frames=frames, flagged=flagged,
                                                        excluded=sorted(dropped)), **changes)


EXCLUDE_FRAMES = Step(
    "exclude_frames", "Leave frames out",
    "Leave chosen frames, and those the sub-pixel alignment flagged, out of everything "
    "that follows (the sums above all).", EXCLUDE_PARAMETERS, _run_exclude_frames)


# -- summing ---------------------------------------------------------------------------
def _run_sum_frames(acquisition: Acquisition):
    counts = acquisition.counts
    yield Progress("sum_frames", 0, 1)
    sums = counts.sum(axis=0)
    yield Progress("sum_frames", 1, 1)
    return acquisition.with_step("sum_frames", {}, sums=np.asarray(sums))


SUM_FRAMES = Step("sum_frames", "Sum frames", "Sum the frames of every channel.", (),
                  _run_sum_frames)
