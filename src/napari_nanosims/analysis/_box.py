"""Box sums of images in time linear in the image, whatever the box."""

from __future__ import annotations

import numpy as np

__all__ = ["_box_sum"]


def _running_box(values: np.ndarray, kernel: int, axis: int) -> np.ndarray:
    """Sum over ``kernel`` neighbours along ``axis`` (zeros beyond the ends), from one
    cumulative sum: two operations per value whatever the kernel. Exact for whole counts
    (float64 holds sums up to 2**53 exactly); otherwise rounding of the order of 1e-16
    times a row's total."""
    half = kernel // 2
    padding = [(0, 0)] * values.ndim
    padding[axis] = (half + 1, half)
    running = np.cumsum(np.pad(values, padding), axis=axis)
    size = values.shape[axis]
    return (np.take(running, np.arange(kernel, kernel + size), axis=axis)
            - np.take(running, np.arange(size), axis=axis))


def _box_sum(image: np.ndarray, kernel: int) -> np.ndarray:
    """Sum over a kernel x kernel box (zeros outside the field; NaN stays NaN).

    Separable running sums: time and memory grow with the image, not with the kernel
    (a 101 x 101 box at 512 x 512 once took 32 s and 806 MiB as a 2-D convolution).
    """
    if kernel == 1:
        return image
    image = np.asarray(image, dtype=np.float64)
    missing = np.isnan(image)
    summed = _running_box(_running_box(np.where(missing, 0.0, image), kernel, 0), kernel, 1)
    touched = _running_box(_running_box(missing.astype(np.float64), kernel, 0), kernel, 1) > 0
    return np.where(touched, np.nan, summed)
