"""Fused per-frame hot-pixel test (numba): the 3 x 3 median, the outlier votes and the
non-zero count of every pixel in one pass over the frame.

The numpy path makes a dozen passes through memory per frame (a median network of
whole-image minimum/maximum operations, a table gather, the comparisons); at a few
counts per pixel that is several times the time of copying the stack. Here each
detector's rows are streamed once: the column sorts, the median and the vote are
computed while the row is in cache, and the inner loop over columns is branch-free so
that LLVM vectorises it. Results are identical to the numpy path (the same threshold
table decides every vote).

Import fails without numba; :mod:`.hot_pixels` then uses the numpy path.
"""

from __future__ import annotations

import numpy as np

from ..._cache import use_user_numba_cache

# cache=True below: the compiled kernels go to the user cache, not into this package.
use_user_numba_cache()

import numba  # noqa: E402 - after the cache folder is chosen


@numba.njit(nogil=True, cache=True, inline="always")
def _median3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


@numba.njit(nogil=True, cache=True)
def _row_medians(above, row, below, out, low, mid, high):
    """3 x 3 medians of one row (edges mirrored as scipy's 'reflect' mode does);
    ``low``, ``mid`` and ``high`` are scratch rows."""
    width = row.shape[0]
    for x in range(width):  # sort every vertical triple once
        a, b, c = above[x], row[x], below[x]
        lo_ab, hi_ab = min(a, b), max(a, b)
        low[x] = min(lo_ab, c)
        upper = max(lo_ab, c)
        mid[x] = min(hi_ab, upper)
        high[x] = max(hi_ab, upper)
    for x in range(1, width - 1):
        max_low = max(max(low[x - 1], low[x]), low[x + 1])
        min_high = min(min(high[x - 1], high[x]), high[x + 1])
        mid_mid = _median3(mid[x - 1], mid[x], mid[x + 1])
        out[x] = _median3(max_low, mid_mid, min_high)
    # Mirrored edges: the column beyond the edge repeats the edge column.
    for x in (0, width - 1):
        left, right = max(x - 1, 0), min(x + 1, width - 1)
        max_low = max(max(low[left], low[x]), low[right])
        min_high = min(min(high[left], high[x]), high[right])
        mid_mid = _median3(mid[left], mid[x], mid[right])
        out[x] = _median3(max_low, mid_mid, min_high)


@numba.njit(nogil=True, cache=True)
def frame_votes(images, factor, min_count, votes, nonzero, medians, copy):
    """Outlier votes, non-zero counts and 3 x 3 medians of one frame, in place.

    ``images`` (detectors, H, W) integer counts; a value is an outlier when
    ``value >= factor * max(median, min_count)`` in float64, the seed's own arithmetic
    for integer counts and a float factor. ``votes`` and ``nonzero`` (H, W) are added
    to; ``medians`` (detectors, H, W, a per-thread scratch array, possibly of a narrower
    type) receives the medians, and ``copy`` (same shape and dtype as ``images``) the
    frame itself: the output copy of the stack made while the row is in cache.

    Returns the smallest and largest count of the frame: the caller checks that the
    medians fitted the scratch array's type.
    """
    n_detectors, height, width = images.shape
    floor = np.float64(min_count)
    low = np.empty(width, images.dtype)
    mid = np.empty(width, images.dtype)
    high = np.empty(width, images.dtype)
    row_medians = np.empty(width, images.dtype)
    smallest = images[0, 0, 0]
    largest = images[0, 0, 0]
    for detector in range(n_detectors):
        image = images[detector]
        for y in range(height):
            above = image[max(y - 1, 0)]
            below = image[min(y + 1, height - 1)]
            row = image[y]
            _row_medians(above, row, below, row_medians, low, mid, high)
            votes_row = votes[y]
            nonzero_row = nonzero[y]
            copy_row = copy[detector, y]
            stored = medians[detector, y]
            for x in range(width):
                value = row[x]
                median = row_medians[x]
                copy_row[x] = value
                stored[x] = median
                smallest = min(smallest, value)
                largest = max(largest, value)
                threshold = factor * max(np.float64(median), floor)
                votes_row[x] += np.uint8(np.float64(value) >= threshold)
                nonzero_row[x] += np.uint8(value > 0)
    return smallest, largest


@numba.njit(nogil=True, cache=True)
def replace_at(image, hot_mask, flat, values):
    """``image[:, p] = values[:, k]`` for the candidates ``p = flat[k]`` still hot.

    ``image`` (detectors, H * W) and ``values`` (detectors, candidates) share a dtype.
    """
    for k in range(flat.shape[0]):
        position = flat[k]
        if hot_mask[position]:
            for detector in range(image.shape[0]):
                image[detector, position] = values[detector, k]
