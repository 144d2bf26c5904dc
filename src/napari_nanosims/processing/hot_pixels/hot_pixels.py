"""Correlated-noise ("hot pixel") detection and removal, as openformat does it, faster.

A hot pixel is one event that spikes several mass channels at the same pixel in
the same frame. The seed's rule (``openformat.mims.infer_hot_pixels``):

1. median-filter every detector image of every frame (``kernel_size`` square,
   scipy's "reflect" edges, frames and detectors never mixed);
2. a value is a candidate when ``count >= outlier_factor * max(median, min_count)``;
3. the pixel is hot in that frame when at least ``num_outliers`` detectors agree
4. and it is non-zero in at least ``num_nonzero`` detectors (default: all);
5. positions hot in a fraction of frames that is not strictly below
   ``max_repeat_fraction`` are cleared everywhere (real features recur).

``remove_hot_pixels`` replaces every detector's value at a hot (frame, pixel) by
that detector's median-filtered value. Results are identical to openformat's; the
work is done frame by frame on all cores, and the 3 x 3 median (the default) by a
short min/max network on shifted views in a small integer type.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Generator
from typing import Any

import numpy as np

from ..._checks import check_number
from ..._errors import HotPixelBlindSpotWarning
from .._frames import check_stack, frame, map_frames, run_to_completion
from ._hot_fast import kernel, kernel_applies, kernel_candidates, release_scratch, replace_at
from .median import _median_frame, _threshold_table, _work_dtype

__all__ = [
    "median_filter_frames",
    "infer_hot_pixels",
    "apply_mask",
    "remove_hot_pixels",
    "iter_remove_hot_pixels",
    "iter_infer_hot_pixels",
    "HotPixelBlindSpotWarning",
    "short_stack_repeat_fraction",
]


def median_filter_frames(data, kernel_size: int = 3) -> np.ndarray:
    """Median-filter every detector image of every frame.

    Parameters
    ----------
    data : array_like, shape (frames, detectors, height, width)
        Counts; may be lazy (memory map, dask).
    kernel_size : int
        Width of the square window, pixels.

    Returns
    -------
    numpy.ndarray
        The filtered stack, same shape and dtype as ``data``; identical to
        ``scipy.ndimage.median_filter(data, (1, 1, kernel_size, kernel_size))``.
    """
    data = check_stack(data)
    kernel_size = _check_kernel(kernel_size)
    dtype = np.asarray(data[:0]).dtype
    out = np.empty(data.shape, dtype=dtype)
    for index, (_, filtered) in enumerate(map_frames(
            lambda f: _median_frame(frame(data, f), kernel_size), data.shape[0])):
        out[index] = filtered
    return out


#: Bounds of the tuning numbers, checked here; the clean step's parameters declare these.
BOUNDS: dict[str, dict[str, Any]] = {
    "kernel_size": dict(kind=int, unit="px", minimum=1, maximum=15, odd=True),
    "outlier_factor": dict(kind=float, above=0.0, maximum=1e6),
    "min_count": dict(kind=float, unit="counts", minimum=0.0, maximum=1e9),
    "max_repeat_fraction": dict(kind=float, minimum=0.0, maximum=2.0),
}


def _check_bound(name: str, value):
    """``value`` checked against ``BOUNDS[name]`` (ValueError naming ``name``)."""
    return check_number(value, name, **BOUNDS[name])


def _check_kernel(kernel_size) -> int:
    return _check_bound("kernel_size", kernel_size)


def _check_parameters(data, num_outliers, kernel_size, max_repeat_fraction, num_nonzero):
    data = check_stack(data)
    n_detectors = data.shape[1]
    if isinstance(num_outliers, bool) or not isinstance(num_outliers, numbers.Integral) or \
            not 1 <= num_outliers <= n_detectors:
        raise ValueError(f"num_outliers must be a whole number from 1 to the number of "
                         f"detectors ({n_detectors}); got {num_outliers!r}")
    kernel_size = _check_kernel(kernel_size)
    _check_bound("max_repeat_fraction", max_repeat_fraction)
    if num_nonzero is not None and (isinstance(num_nonzero, bool) or not (
            isinstance(num_nonzero, numbers.Integral)
                                        and 0 <= num_nonzero <= n_detectors)):
        raise ValueError(f"num_nonzero must be None or 0 to {n_detectors}; got {num_nonzero!r}")
    return data, kernel_size, (num_nonzero or n_detectors)


def _warn_blind_spot(n_frames: int, max_repeat_fraction: float) -> None:
    # A pixel hot in a single frame has repeat fraction 1/n; the seed keeps it only
    # when that is strictly below max_repeat_fraction.
    if n_frames and 1.0 / n_frames >= max_repeat_fraction:
        warnings.warn(
            f"with {n_frames} frames and max_repeat_fraction={max_repeat_fraction} no pixel "
            f"can be flagged as hot (a single hit is 1/{n_frames} of the frames, which is not "
            f"below {max_repeat_fraction}); raise max_repeat_fraction above {1.0 / n_frames:.3g} "
            "to find hot pixels in this stack", HotPixelBlindSpotWarning, stacklevel=4)


def short_stack_repeat_fraction(n_frames: int, max_repeat_fraction: float) -> float:
    """The ``max_repeat_fraction`` that cleans a stack of ``n_frames``: the rule the docs
    give for short stacks ("raise it above 1/frames"), applied.

    A pixel hot in one frame has a repeat fraction of 1/frames; the persistence veto keeps
    it only when that is strictly below ``max_repeat_fraction``. In the blind spot
    (``0 < max_repeat_fraction <= 1/frames``: nothing could be flagged) this returns
    1.5/frames: pixels hot in one frame are cleaned, those hot in two or more are kept as
    features (1 frame: 1.5, the veto off). Other values are returned as they are.

    Parameters
    ----------
    n_frames : int
        Frames in the stack.
    max_repeat_fraction : float
        The value asked for (fraction of the frames).

    Returns
    -------
    float
        The value to use (fraction of the frames, at most 1.5).
    """
    if n_frames < 1 or not 0.0 < max_repeat_fraction <= 1.0 / n_frames:
        return float(max_repeat_fraction)
    return 1.5 / n_frames


def _outliers(values: np.ndarray, data_dtype: np.dtype, medians: np.ndarray, outlier_factor,
              min_count) -> np.ndarray:
    """The seed's per-detector test ``count >= outlier_factor * max(median, min_count)``.

    ``values`` and ``medians`` may be in the small work type; ``data_dtype`` is the type
    the seed would compute in.
    """
    if medians.dtype.kind in "ui" and medians.dtype.itemsize <= 2:
        table = _threshold_table(int(np.iinfo(medians.dtype).max), medians.dtype,
                                 outlier_factor, min_count, data_dtype)
        if table is not None:
            return values >= np.take(table, medians)
    if isinstance(outlier_factor, numbers.Integral) and isinstance(min_count, numbers.Integral):
        medians = medians.astype(data_dtype, copy=False)
    return values >= outlier_factor * np.maximum(medians, min_count)


# Below this fraction of pixels that are non-zero in enough detectors, medians are
# computed only at those pixels instead of over the whole frame.
SPARSE_FRACTION = 0.25


def _frame_hot_candidates(images, kernel_size, num_outliers, outlier_factor, min_count,
                          num_nonzero, need_filtered, copy_to=None):
    """Seed steps 1-4 for one frame (detectors, H, W).

    Returns the candidate mask (H, W), the flat indices of the candidates, the
    median-filtered values there (detectors, k), and the whole filtered frame when
    ``need_filtered`` (else None). A hot pixel must be non-zero in ``num_nonzero``
    detectors, which in low-count data few pixels are, so when they are few only
    their 3 x 3 medians are computed.
    """
    if kernel_size == 3 and not need_filtered and images.shape[0] < 256 and images.size \
            and kernel_applies(images.dtype, outlier_factor, min_count):
        return kernel_candidates(images, num_outliers, outlier_factor, min_count, num_nonzero,
                                 copy_to)
    if copy_to is not None:
        copy_to[...] = images
    work = images.astype(_work_dtype(images), copy=False)
    n_detectors, height, width = work.shape
    nonzero = np.add.reduce(work > 0, axis=0, dtype=np.int16)
    eligible = np.flatnonzero(nonzero >= num_nonzero)
    candidates = np.zeros(height * width, dtype=bool)
    if kernel_size == 3 and not need_filtered and eligible.size <= SPARSE_FRACTION * nonzero.size:
        rows, cols = np.divmod(eligible, width)
        padded = np.pad(work, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
        window = np.stack([padded[:, rows + dr, cols + dc] for dr in range(3) for dc in range(3)])
        medians = np.partition(window, 4, axis=0)[4]
        values = work.reshape(n_detectors, -1)[:, eligible]
        votes = np.add.reduce(_outliers(values, images.dtype, medians, outlier_factor, min_count),
                              axis=0, dtype=np.int16)
        hot = votes >= num_outliers
        candidates[eligible[hot]] = True
        return candidates.reshape(height, width), eligible[hot], medians[:, hot], None
    _, filtered = _median_frame(work, kernel_size)
    votes = np.add.reduce(_outliers(work, images.dtype, filtered, outlier_factor, min_count),
                          axis=0, dtype=np.int16)
    candidates = (votes >= num_outliers) & (nonzero >= num_nonzero)
    flat = np.flatnonzero(candidates)
    return candidates, flat, filtered.reshape(n_detectors, -1)[:, flat], (
        filtered if need_filtered else None)


def iter_infer_hot_pixels(data, num_outliers, kernel_size=3, outlier_factor=3, min_count=1,
                          max_repeat_fraction=0.1, num_nonzero=None, keep_filtered="all",
                          copy_into=None) -> Generator[int, None, tuple[np.ndarray, Any]]:
    """Generator form of :func:`infer_hot_pixels` for progress bars and cancelling.

    Yields the number of frames done after each frame; returns ``(mask, filtered)``
    where ``filtered`` is the whole filtered stack (``keep_filtered='all'``), a dict
    frame -> (pixel indices, filtered values at them) for the candidate pixels only
    (``'candidates'``, what :func:`remove_hot_pixels` needs), or None (``'none'``).
    Stopping early (``close()``) returns nothing and leaves no partial output.
    ``copy_into``, an array shaped like ``data``, receives each frame as it is read (the
    output copy of :func:`remove_hot_pixels`, made on the frame threads).
    """
    data, kernel_size, num_nonzero = _check_parameters(
        data, num_outliers, kernel_size, max_repeat_fraction, num_nonzero)
    _check_bound("outlier_factor", outlier_factor)
    _check_bound("min_count", min_count)
    if keep_filtered not in ("all", "candidates", "none"):
        raise ValueError(f"keep_filtered must be 'all', 'candidates' or 'none', "
                         f"not {keep_filtered!r}")
    n_frames, n_detectors, height, width = data.shape
    _warn_blind_spot(n_frames, max_repeat_fraction)
    dtype = np.asarray(data[:0]).dtype
    mask = np.zeros((n_frames, height, width), dtype=bool)
    need_filtered = keep_filtered == "all"
    filtered_all = np.empty(data.shape, dtype) if need_filtered else None
    at_candidates: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def work(index):
        return _frame_hot_candidates(frame(data, index), kernel_size, num_outliers,
                                     outlier_factor, min_count, num_nonzero, need_filtered,
                                     None if copy_into is None else copy_into[index])

    for index, (candidates, flat, values, filtered) in enumerate(map_frames(work, n_frames)):
        mask[index] = candidates
        if need_filtered:
            assert filtered_all is not None  # allocated above when need_filtered
            filtered_all[index] = filtered
        elif flat.size:
            at_candidates[index] = (flat, values)
        yield index + 1
    release_scratch()  # the frame threads are kept, not their arrays (a cancel: next run)
    # Persistence veto, with the seed's exact arithmetic (mean over frames, strictly below;
    # count / frames is numpy's mean of booleans exactly, and several times faster).
    repeats = np.add.reduce(mask, axis=0, dtype=np.int64 if n_frames >= 2**31 else np.int32)
    mask &= (repeats / n_frames < max_repeat_fraction)[None]
    if need_filtered:
        return mask, filtered_all
    return mask, (at_candidates if keep_filtered == "candidates" else None)


def infer_hot_pixels(data, num_outliers, kernel_size=3, outlier_factor=3, min_count=1,
                     max_repeat_fraction=0.1, num_nonzero=None, return_filtered=False):
    """Find hot pixels: correlated noise events across detectors.

    Same arguments, defaults and results as ``openformat.mims.infer_hot_pixels``.

    Parameters
    ----------
    data : array_like, shape (frames, detectors, height, width)
        Counts (leave the SE channel out). Lazy arrays are read frame by frame;
        ``data`` is never modified.
    num_outliers : int
        Detectors that must flag a pixel in the same frame, 1 to the number of detectors.
    kernel_size : int
        Width of the median filter window, pixels.
    outlier_factor : float
        A value is an outlier when ``count >= outlier_factor * max(median, min_count)``.
    min_count : float
        Floor of the local median in that test, counts.
    max_repeat_fraction : float
        Pixels flagged in this fraction of frames or more are real features, not noise.
        With ``frames <= 1 / max_repeat_fraction`` nothing can be flagged; a
        :class:`HotPixelBlindSpotWarning` says so.
    num_nonzero : int or None
        Detectors in which the pixel must be non-zero; None or 0 means all.
    return_filtered : bool
        Also return the median-filtered stack.

    Returns
    -------
    mask : numpy.ndarray of bool, shape (frames, height, width)
    filtered : numpy.ndarray, same shape and dtype as ``data`` (only with ``return_filtered``)

    Raises
    ------
    ValueError
        For data that is not 4-D and for parameters out of range.
    """
    mask, filtered = run_to_completion(iter_infer_hot_pixels(
        data, num_outliers, kernel_size, outlier_factor, min_count, max_repeat_fraction,
        num_nonzero, keep_filtered="all" if return_filtered else "none"))
    return (mask, filtered) if return_filtered else mask


def apply_mask(data, mask, replacement_values):
    """Copy ``data`` and replace the values at hot (frame, pixel) positions.

    Same behaviour as ``openformat.mims.apply_mask``.

    Parameters
    ----------
    data : array_like, shape (frames, detectors, height, width)
    mask : array_like of bool, shape (frames, height, width)
        Applied to every detector.
    replacement_values : array_like
        An array shaped like ``data`` (values taken elementwise), a scalar, or one value
        per replaced element in C order.

    Returns
    -------
    numpy.ndarray
        A new array with ``data``'s dtype; ``data`` is not modified.
    """
    data = check_stack(data)
    cleaned = np.array(data, copy=True)
    mask = np.asarray(mask, dtype=bool)
    expected = cleaned.shape[:1] + cleaned.shape[2:]
    if mask.shape != expected:
        raise ValueError(f"mask must have shape (frames, height, width) = {expected}; "
                         f"got {mask.shape}")
    full_mask = np.broadcast_to(mask[:, None], cleaned.shape)
    replacement_values = np.asarray(replacement_values)
    if replacement_values.shape == cleaned.shape:
        cleaned[full_mask] = replacement_values[full_mask]
    else:
        count = int(full_mask.sum())
        if replacement_values.ndim and replacement_values.size not in (1, count):
            raise ValueError(f"replacement_values must be shaped like data, a scalar, or hold "
                             f"{count} values (one per replaced element); got shape "
                             f"{replacement_values.shape}")
        cleaned[full_mask] = replacement_values
    return cleaned


def iter_remove_hot_pixels(data, num_outliers=3, kernel_size=3, outlier_factor=1.999,
                           min_count=0.5, max_repeat_fraction=0.1, num_nonzero=None
                           ) -> Generator[int, None, tuple[np.ndarray, np.ndarray]]:
    """Generator form of :func:`remove_hot_pixels`: yields frames done, returns results.

    Returns ``(cleaned, mask)``. The cleaned stack is assembled only after the last
    frame, so stopping early leaves no half-cleaned output.
    """
    data = check_stack(data)
    # Zero-initialised lazily by the OS; the frame threads fill it as they read.
    cleaned = np.empty(data.shape, np.asarray(data[:0]).dtype)
    mask, at_candidates = yield from iter_infer_hot_pixels(
        data, num_outliers, kernel_size, outlier_factor, min_count, max_repeat_fraction,
        num_nonzero, keep_filtered="candidates", copy_into=cleaned)
    replace_hot_pixels(cleaned, mask, at_candidates)
    return cleaned, mask


def replace_hot_pixels(target: np.ndarray, mask: np.ndarray, at_candidates: dict,
                       detectors=None) -> None:
    """Write the median-filtered values into ``target`` at hot (frame, pixel) positions.

    ``at_candidates`` is what :func:`iter_infer_hot_pixels` returns with
    ``keep_filtered='candidates'``; ``detectors`` says which detectors of ``target``
    (frames, detectors, H, W) the filtered values belong to (default: all, in order).
    Modifies ``target`` in place: it must be the caller's own copy.
    """
    detectors = list(range(target.shape[1])) if detectors is None else list(detectors)
    every_detector = detectors == list(range(target.shape[1]))
    items = list(at_candidates.items())

    def replace(item):
        index, (flat, values) = item
        image = target[index].reshape(target.shape[1], -1)
        if every_detector and kernel() is not None and image.flags.c_contiguous \
                and image.dtype.kind in "ui" and values.dtype.kind in "ui" \
                and image.dtype.isnative and values.dtype.isnative:  # numba: native only
            replace_at(image, mask[index].ravel(), flat, values)
            return
        hot = mask[index].ravel()[flat]
        if not hot.any():
            return
        positions = flat[hot]
        if every_detector:
            image[:, positions] = values[:, hot]
        else:
            for row, detector in enumerate(detectors):
                image[detector, positions] = values[row, hot]

    # Frames are independent: replaced on the frame threads.
    for _ in map_frames(lambda k: replace(items[k]), len(items)):
        pass


def remove_hot_pixels(data, num_outliers=3, kernel_size=3, outlier_factor=1.999,
                      min_count=0.5, max_repeat_fraction=0.1, num_nonzero=None):
    """Remove hot pixels: replace them in every detector by the local median.

    Same arguments, defaults and results as ``openformat.mims.remove_hot_pixels``
    (note its defaults differ from :func:`infer_hot_pixels`': a pixel must reach about
    twice its local median in at least 3 detectors and be non-zero in all of them).

    Parameters
    ----------
    data : array_like, shape (frames, detectors, height, width)
        Counts without the SE channel; never modified; lazy arrays are fine.
    num_outliers, kernel_size, outlier_factor, min_count, max_repeat_fraction, num_nonzero
        See :func:`infer_hot_pixels`.

    Returns
    -------
    numpy.ndarray
        The cleaned stack, same shape and dtype as ``data``.
    """
    cleaned, _ = run_to_completion(iter_remove_hot_pixels(
        data, num_outliers, kernel_size, outlier_factor, min_count, max_repeat_fraction,
        num_nonzero))
    return cleaned
