"""The local background removed from each frame before registration: a Gaussian of a
few pixels, computed on block means and interpolated back (a tenth of the cost of the
full-size filter; the background is smooth at that scale)."""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["local_background", "interpolation_matrix", "HIGH_PASS_PX"]

#: Default scale of the local background removed from each frame (Gaussian sigma), px;
#: each stack's is chosen from its scene (weighting.HIGH_PASS_CANDIDATES_PX).
HIGH_PASS_PX = 8.0


def _upsample_linear(small: np.ndarray, factor: int, length: int, axis: int) -> np.ndarray:
    """Linear interpolation from block centres back to ``length`` pixels along ``axis``
    (constant beyond the first and last centres).

    Pixel ``factor * m + r`` lies at the same fraction between two block centres for
    every ``m``, so each of the ``factor`` phases is two scaled copies of the blocks: a
    few strided passes over the output instead of a gather per pixel.
    """
    small = np.asarray(small, dtype=np.float32)
    blocks = small.shape[axis]

    def along(part) -> tuple:  # an index of ``part`` along ``axis``, all of the other
        return (slice(None),) * axis + (part,)

    # One block of edge values on each side: interpolating there repeats the edge.
    extended = np.concatenate([small[along(slice(0, 1))], small,
                               small[along(slice(blocks - 1, blocks))]], axis=axis)
    shape = list(small.shape)
    shape[axis] = blocks * factor
    out = np.empty(shape, np.float32)
    for phase in range(factor):
        position = (phase + 0.5) / factor - 0.5  # in blocks, from the block's centre
        below = int(np.floor(position))
        fraction = np.float32(position - below)
        target = out[along(slice(phase, None, factor))]
        np.multiply(extended[along(slice(1 + below, 1 + below + blocks))],
                    np.float32(1.0) - fraction, out=target)
        target += extended[along(slice(2 + below, 2 + below + blocks))] * fraction
    return out[along(slice(0, length))]


#: Up to this many blocks per side the Gaussian on the block means and the interpolation
#: back to full size are two matrix products (a 256 px frame: 64 or 33 instead of 104
#: or 132 us for 4 or 8 px blocks, the filter's 50 us besides; and BLAS releases the
#: GIL, so that two frame threads gain 1.5-1.8x where the phase-wise passes, many short
#: numpy calls, ran slower on two threads than on one); beyond, the dense products grow
#: with the blocks and the phase-wise passes are faster.
MATRIX_MAX_BLOCKS = 96


def interpolation_matrix(position: np.ndarray, count: int) -> np.ndarray:
    """(positions, count) float64: linear interpolation between ``count`` points at the
    fractional indices ``position`` (within 0 .. count - 1) as a matrix, two weights a
    row (one point: all on it); ``matrix @ values`` interpolates along one axis."""
    position = np.asarray(position, dtype=np.float64)
    matrix = np.zeros((position.size, count))
    if count == 1:
        matrix[:, 0] = 1.0
        return matrix
    below = np.minimum(np.floor(position).astype(np.int64), count - 2)
    fraction = position - below
    matrix[np.arange(position.size), below] = 1.0 - fraction
    matrix[np.arange(position.size), below + 1] = fraction
    return matrix


@functools.lru_cache(maxsize=32)
def _smoothing_matrix(blocks: int, factor: int, length: int, sigma_blocks: float
                      ) -> np.ndarray:
    """(length, blocks) float32: the Gaussian of ``sigma_blocks`` on the block means
    (mirrored at the ends, as scipy.ndimage's "reflect") and the linear interpolation
    back to full size of :func:`_upsample_linear`, as one matrix: the filter is free in
    the matrix products."""
    from scipy import ndimage

    gaussian = np.eye(blocks)
    if sigma_blocks > 1e-15:  # as scipy.ndimage.gaussian_filter, which skips it below
        # The filter's response to each block alone is its column of the operator.
        gaussian = ndimage.gaussian_filter1d(gaussian, sigma_blocks, axis=0, mode="reflect")
    # Each pixel between the two block centres around it (held beyond the outer ones).
    centres = np.clip((np.arange(length) + 0.5) / factor - 0.5, 0.0, blocks - 1.0)
    matrix = (interpolation_matrix(centres, blocks) @ gaussian).astype(np.float32)
    matrix.flags.writeable = False  # shared by every later call
    return matrix


def _block_means(image: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor`` x ``factor`` blocks of an image whose sides are multiples of
    ``factor`` (strided sums: a reshaped mean over short axes is several times slower)."""
    columns = image[:, 0::factor].copy()
    for offset in range(1, factor):
        columns += image[:, offset::factor]
    blocks = columns[0::factor].copy()
    for offset in range(1, factor):
        blocks += columns[offset::factor]
    blocks *= np.float32(1.0 / (factor * factor))
    return blocks


def local_background(image: np.ndarray, sigma_px: float | None = None) -> np.ndarray:
    """Smooth local background of an image: a Gaussian of ``sigma_px`` (default
    :data:`HIGH_PASS_PX`), computed on block means and interpolated back (a tenth of
    the cost of the full-size filter; the background is smooth at that scale)."""
    from scipy import ndimage

    sigma_px = HIGH_PASS_PX if sigma_px is None else float(sigma_px)
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(sigma_px):  # no background: the registration removes the mean only
        return np.zeros_like(image)
    height, width = image.shape
    # Blocks of up to sigma / 2, and at least 8 of them per side.
    factor = max(1, min(int(sigma_px // 2), min(height, width) // 8))
    rows, cols = -(-height // factor), -(-width // factor)
    if rows * factor == height and cols * factor == width:
        padded = image  # whole blocks already (np.pad costs 40 us even for nothing)
    else:
        padded = np.pad(image, ((0, rows * factor - height), (0, cols * factor - width)),
                        mode="reflect" if min(height, width) > factor else "edge")
    small = _block_means(padded, factor)
    # Block means already blur by a box of 'factor' pixels (variance (f^2 - 1) / 12).
    remaining = float(np.sqrt(max(sigma_px ** 2 - (factor ** 2 - 1) / 12.0, 0.0)) / factor)
    if max(rows, cols) <= MATRIX_MAX_BLOCKS:  # filter and interpolation in two products
        return (_smoothing_matrix(rows, factor, height, remaining) @ small) @ \
            _smoothing_matrix(cols, factor, width, remaining).T
    small = ndimage.gaussian_filter(small, remaining, mode="reflect")
    # Columns first: the rows' pass then writes whole contiguous rows of the full image.
    return _upsample_linear(_upsample_linear(small, factor, width, 1), factor, height, 0)
