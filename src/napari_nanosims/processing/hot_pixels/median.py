"""Exact median filters for small integer counts: a min/max network for 3 x 3 windows.

numpy has no fast exact 3 x 3 median; sorting networks on whole images (vectorised
minimum/maximum) are exact and many times faster than ``scipy.ndimage.median_filter``.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np


def _work_dtype(values: np.ndarray) -> np.dtype:
    """The smallest unsigned type that holds non-negative integer counts exactly."""
    if values.dtype.kind not in "ui" or values.size == 0:
        return values.dtype
    low, high = values.min(), values.max()
    if low < 0:
        return values.dtype
    if high < 256:
        return np.dtype(np.uint8)
    if high < 65536:
        return np.dtype(np.uint16)
    return values.dtype


def _sort3(a, b, c):
    """Elementwise (min, middle, max) of three arrays."""
    low_ab, high_ab = np.minimum(a, b), np.maximum(a, b)
    low = np.minimum(low_ab, c)
    upper = np.maximum(low_ab, c)
    return low, np.minimum(high_ab, upper), np.maximum(high_ab, upper)


def _median3(a, b, c):
    """Elementwise median of three arrays."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _median3x3(images: np.ndarray) -> np.ndarray:
    """Exact 3 x 3 median of each image in ``images`` (..., H, W), mirrored edges.

    Sort every vertical triple once; the median of the 3 x 3 block is then the
    median of (largest column minimum, median of column medians, smallest column
    maximum) over the three columns. About 18 min/max passes instead of sorting 9
    values per pixel. Edges repeat the border pixel, as scipy's 'reflect' mode does.
    """
    pad = [(0, 0)] * (images.ndim - 2) + [(1, 1), (1, 1)]
    padded = np.pad(images, pad, mode="symmetric")
    height = images.shape[-2]
    low, mid, high = _sort3(padded[..., 0:height, :], padded[..., 1:height + 1, :],
                            padded[..., 2:height + 2, :])
    max_low = np.maximum(np.maximum(low[..., :-2], low[..., 1:-1]), low[..., 2:])
    min_high = np.minimum(np.minimum(high[..., :-2], high[..., 1:-1]), high[..., 2:])
    mid_mid = _median3(mid[..., :-2], mid[..., 1:-1], mid[..., 2:])
    return _median3(max_low, mid_mid, min_high)


def _median_frame(images: np.ndarray, kernel_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Median filter of one frame (detectors, H, W), in a small work type when exact.

    Returns the frame converted to that type (same values) and its filtered image.
    """
    work = images.astype(_work_dtype(images), copy=False)
    if kernel_size == 3:
        return work, _median3x3(work)
    if kernel_size == 1:
        return work, work.copy()
    from scipy import ndimage

    return work, ndimage.median_filter(work, size=(1, kernel_size, kernel_size),
                                       mode="reflect")


def _threshold_table(max_median: int, dtype: np.dtype, outlier_factor, min_count,
                     data_dtype: np.dtype) -> np.ndarray | None:
    """Cached :func:`_build_threshold_table` (it is needed for every frame)."""
    return _cached_threshold_table(max_median, np.dtype(dtype).str, outlier_factor, min_count,
                                   np.dtype(data_dtype).str)


@functools.lru_cache(maxsize=32, typed=True)
def _cached_threshold_table(max_median, dtype_str, outlier_factor, min_count, data_dtype_str):
    table = _build_threshold_table(max_median, np.dtype(dtype_str), outlier_factor, min_count,
                                   np.dtype(data_dtype_str))
    if table is not None:
        table.flags.writeable = False  # shared between calls and threads
    return table


def _build_threshold_table(max_median: int, dtype: np.dtype, outlier_factor, min_count,
                           data_dtype: np.dtype) -> np.ndarray | None:
    """Smallest count that is an outlier, for every possible integer median.

    For integer counts ``x`` and a median ``m``, the seed's test
    ``x >= outlier_factor * max(m, min_count)`` is ``x >= table[m]``: the threshold is
    computed with the seed's own expression and types for each ``m`` and rounded up.
    Returns None when no exact table exists (non-integer data).
    """
    if dtype.kind not in "ui" or data_dtype.kind not in "ui":
        return None
    medians = np.arange(max_median + 1, dtype=dtype)
    if isinstance(outlier_factor, numbers.Integral) and isinstance(min_count, numbers.Integral):
        # An all-integer threshold is computed in the data's own type, as the seed does.
        medians = medians.astype(data_dtype)
    threshold = outlier_factor * np.maximum(medians, min_count)
    with np.errstate(invalid="ignore"):
        table = np.ceil(threshold.astype(np.float64))
    # Above every representable count: nothing reaches it.
    ceiling = float(np.iinfo(data_dtype).max) + 1
    table = np.where(np.isnan(table), ceiling, np.clip(table, 0, ceiling))
    # The smallest type that holds the table keeps the gather and comparison cheap.
    for candidate in (np.uint8, np.uint16, np.uint32, np.int64):
        if table.max() <= np.iinfo(candidate).max:
            return table.astype(candidate)
    return table.astype(np.float64)  # pragma: no cover - 64-bit counts
