"""Fused per-frame weighting of the sub-pixel registration (numba).

A refinement pass weighs each frame and its leave-one-out reference in real space
(:meth:`.subpixel._Sums.correlate`): a dozen whole-canvas numpy operations, each a
pass through memory, which at 256 x 256 took longer than the three FFTs around them.
Here the canvas is streamed twice (the weights and the reference, then the level
taken off the reference), and the cross spectrum is one loop. The numbers are those of
the numpy path to single-precision rounding (the two sums are kept in double).

Import fails without numba; :mod:`.subpixel` then uses the numpy path.
"""

from __future__ import annotations

import numpy as np

from ..._cache import use_user_numba_cache

# cache=True below: the compiled kernels go to the user cache, not into this package.
use_user_numba_cache()

import numba  # noqa: E402 - after the cache folder is chosen

__all__ = ["weigh", "cross_spectrum"]


@numba.njit(nogil=True, cache=True)
def weigh(summed, coverage, mine, placed, exclude, frame_part, reference, noise):
    """Fill ``frame_part``, ``reference`` (and ``noise`` unless it is empty) in place.

    See :meth:`napari_nanosims.processing.alignment.subpixel._Sums.correlate` for what
    each is; ``exclude`` leaves the frame (``mine`` at ``placed``) out of the sums.
    """
    rows, cols = summed.shape
    with_noise = noise.size > 0
    total_weight = 0.0
    reference_weight = 0.0
    for i in range(rows):
        for j in range(cols):
            window = placed[i, j]
            total = summed[i, j]
            cover = coverage[i, j]
            own = mine[i, j]
            if exclude:
                total -= own
                cover -= window
            weight = min(max(cover, np.float32(0.0)), np.float32(1.0))
            scale = window / max(cover, np.float32(1.0))
            value = total * scale
            reference[i, j] = value
            frame_part[i, j] = own * weight
            total_weight += window * weight
            reference_weight += value * weight
            if with_noise:
                noise[i, j] = scale * scale * max(cover, np.float32(0.0))
    if total_weight > 0:
        level = np.float32(reference_weight / total_weight)
        for i in range(rows):
            for j in range(cols):
                cover = coverage[i, j]
                if exclude:
                    cover -= placed[i, j]
                weight = min(max(cover, np.float32(0.0)), np.float32(1.0))
                reference[i, j] -= level * placed[i, j] * weight


@numba.njit(nogil=True, cache=True)
def cross_spectrum(frame_spectrum, reference_spectrum, correlation_filter, out):
    """``out = conj(frame_spectrum) * reference_spectrum * correlation_filter``."""
    rows, cols = out.shape
    for i in range(rows):
        for j in range(cols):
            out[i, j] = (np.conj(frame_spectrum[i, j]) * reference_spectrum[i, j]
                         * correlation_filter[i, j])
