"""The displacement field of :mod:`.piecewise` fitted to its patches' moves: per frame,
the field at the grid points whose means over the patches reproduce the moves
(:func:`consistent_field`; the statistics on the moves are in :mod:`._field`).
"""

from __future__ import annotations

import numpy as np

from .warp import affine_share, grid_weights, slope_beyond

__all__ = ["consistent_field", "CURVATURE_PENALTY", "PRIOR_PX", "SHARE_TOLERANCE",
           "SHARE_ROUNDS"]

#: Penalty on the field's curvature over the grid, relative to a frame's typical patch
#: weight (one over its variance): small, so that the field follows what the patches
#: measure (a bulge narrower than a patch), but enough to pin the checkerboard that the
#: overlapping patches' means cannot see.
CURVATURE_PENALTY = 3e-3
#: The field is shrunk toward the rigid result: a move of this much (1 sigma, px) beyond
#: the rigid one is as likely as not. Weak: it holds grid points that no patch measures
#: and must not pull back a deformation of a few pixels. Fitted to the patches' means,
#: grid points near the edges are determined by few patches: 0.5 px (the earlier
#: rounds' value, with a smooth of the moves) took the mineral's worst patch to 2.6x
#: its limit (by the looser limit of the time); 1.5 px with the penalty above gave the
#: smallest field errors per pixel and per patch of the values tried (0.5-10 px,
#: penalties 1e-3 to 1e-2; docs/processing.md).
PRIOR_PX = 1.5


#: The share of its slope a frame's field carries beyond the outer grid points is
#: the one its own field implies to within this (the fits settle in 1-2 rounds; a
#: share 0.06 off moved the field at the frame's edges by up to 0.07 px) ...
SHARE_TOLERANCE = 0.01
#: ... fitting again at most this many times.
SHARE_ROUNDS = 3


def _second_differences(centres: np.ndarray) -> np.ndarray:
    """(points - 2, points): the second derivative along one axis at each inner grid
    point, for grid points at ``centres`` (pixels, possibly uneven: the last patch sits
    flush with the frame's edge), in units of the typical spacing. A linear field has
    none, however the points are spaced."""
    centres = np.asarray(centres, dtype=np.float64)
    count = centres.size
    operator = np.zeros((max(count - 2, 0), count))
    if count < 3:
        return operator
    unit = float(np.median(np.diff(centres)))
    before, after = np.diff(centres)[:-1] / unit, np.diff(centres)[1:] / unit
    inner = np.arange(count - 2)
    scale = 2.0 / (before + after)
    operator[inner, inner] = scale / before
    operator[inner, inner + 1] = -scale * (1.0 / before + 1.0 / after)
    operator[inner, inner + 2] = scale / after
    return operator


def _grid_curvature(grid) -> np.ndarray:
    """(points, points): the field's squared second derivatives along rows and along
    columns, summed over the grid (as a quadratic form on the flattened grid values)."""
    down, across = _second_differences(grid[0]), _second_differences(grid[1])
    rows, cols = down.shape[1], across.shape[1]
    operators = [np.kron(down, np.eye(cols)), np.kron(np.eye(rows), across)]
    return sum(operator.T @ operator for operator in operators)


def _patch_rows(weights, corners, side: int, row_weights, column_weights, frames: slice):
    """Per registered patch: its row and column, the grid points its windows touch
    (flat indices) and, for the frames in ``frames``, each axis's weighted mean over
    the frame's window of each of those points' bilinear basis functions, (frames, 2,
    points). ``row_weights``, ``column_weights``: per frame of ``frames``, every pixel's
    bilinear weights on the grid along each axis (:func:`.warp.grid_weights`)."""
    n_cols, inside = column_weights.shape[2], np.arange(side)
    each = np.arange(frames.stop - frames.start)[:, None, None]
    for i in range(weights.shape[0]):
        for j in range(weights.shape[1]):
            if not weights[i, j].any():
                continue  # a patch that did not register: no move, no weights
            tops, lefts = (corners[frames, i, j, axis].astype(np.int64) for axis in (0, 1))
            # Only the grid points under the windows (local but for a slope carried on).
            near_rows = np.flatnonzero(row_weights[:, tops.min():tops.max() + side].any((0, 1)))
            near_cols = np.flatnonzero(column_weights[:, lefts.min():lefts.max() + side].any(
                (0, 1)))
            down = row_weights[each, (tops[:, None] + inside)[:, :, None], near_rows]
            across = column_weights[each, (lefts[:, None] + inside)[:, :, None], near_cols]
            means = np.stack([np.swapaxes(down, 1, 2) @ weights[i, j, axis] @ across
                              / weights[i, j, axis].sum() for axis in (0, 1)], axis=1)
            points = (near_rows[:, None] * n_cols + near_cols[None, :]).ravel()
            yield i, j, points, means.reshape(means.shape[:2] + (-1,))


def consistent_field(moves: np.ndarray, sigma: np.ndarray, weights: np.ndarray,
                     corners: np.ndarray, side: int, grid, shape,
                     chunk: int = 16, slope_share=None, added_to=None) -> np.ndarray:
    """Per frame, the field (frames, 2, grid rows, grid cols) at the grid points (``grid``:
    their row and column pixel coordinates), pixels, whose means over the patches
    reproduce the patches' moves.

    A patch's registration measures the mean move of its pixels weighted by how much
    each tells about the shift (``weights`` (patch rows, patch cols, 2, side, side): per
    axis the squared gradient of its structure under the window), over the window where
    that frame's patch was cut (``corners`` (frames, patch rows, patch cols, 2), which
    follows the drift); ``moves`` and ``sigma`` are (frames, patch rows, patch cols, 2).
    The field is bilinear between the grid points, so each such mean is a linear
    function of the grid values: per frame and axis the values are the least-squares
    fit to the patches' moves (weighted by one over their variances), with a small
    curvature penalty (:data:`CURVATURE_PENALTY`, which pins the checkerboard that
    overlapping means cannot see) and shrunk toward the rigid result by
    :data:`PRIOR_PX`. Unlike a smooth of the patch values placed at points, this follows
    a deformation narrower than a patch (a bulge): the means of a smooth field flatten
    its peak, and the fit undoes that.

    Beyond the outer grid points the field carries ``slope_share`` (frames,) of its
    slope (:func:`.warp.grid_weights`). By default the share the frame's field implies
    (:func:`.warp.affine_share`, as the warp takes it): fitted first as held constant
    (or with the share of ``added_to``, the field this one corrects: theirs is the sum),
    then again with the share implied, until it changes by at most
    :data:`SHARE_TOLERANCE` (within :data:`SHARE_ROUNDS` fits more).
    """
    n_frames = moves.shape[0]  # (windows inside the frame)
    if np.any(corners < 0) or np.any(corners + side > np.asarray(shape)):
        raise ValueError(f"patch windows of {side} px must lie inside the {tuple(shape)} "
                         "frame")
    if slope_share is not None:
        return _fitted(moves, sigma, weights, corners, side, grid, shape, chunk,
                       np.broadcast_to(np.asarray(slope_share, dtype=np.float64), n_frames))
    # The warp takes the share from the field it is given (base + this one), so each
    # frame is fitted again with the share its field implies until that settles.
    base = np.zeros(1) if added_to is None else np.asarray(added_to, dtype=np.float64)
    shares = (np.zeros(n_frames) if added_to is None else
              np.array([affine_share(values, grid) for values in base]))
    field = _fitted(moves, sigma, weights, corners, side, grid, shape, chunk, shares)
    for _ in range(SHARE_ROUNDS):
        implied = np.array([affine_share(values, grid) for values in base + field])
        again = np.abs(implied - shares) > SHARE_TOLERANCE
        if not again.any():
            break
        shares[again] = implied[again]
        field[again] = _fitted(moves[again], sigma[again], weights, corners[again], side,
                               grid, shape, chunk, shares[again])
    return field


def _fitted(moves, sigma, weights, corners, side: int, grid, shape, chunk: int,
            shares: np.ndarray) -> np.ndarray:
    """:func:`consistent_field` with each frame's ``shares`` of slope given."""
    n_frames = moves.shape[0]
    rows, cols, finite = len(grid[0]), len(grid[1]), np.isfinite(sigma)
    points, curvature = rows * cols, _grid_curvature(grid)
    inverse_variance = np.where(finite, 1.0 / np.where(finite, sigma, 1.0) ** 2, 0.0)
    # A frame's typical weight (the median over its registered patches, per axis; none:
    # no field) scales the curvature penalty (its noise level).
    per_frame = np.moveaxis(np.where(finite, inverse_variance, np.nan), 3, 1).reshape(
        n_frames * 2, -1)
    measured = finite.any(axis=(1, 2)).reshape(-1)
    typical = np.zeros(n_frames * 2)
    typical[measured] = np.nanmedian(per_frame[measured], axis=1)
    typical = typical.reshape(n_frames, 2)
    # Every pixel's weights per frame: the bilinear ones plus its share of the slope.
    bilinear = [grid_weights(grid[axis], shape[axis]) for axis in (0, 1)]
    slope = [slope_beyond(grid[axis], shape[axis]) for axis in (0, 1)]
    identity = np.eye(points) / PRIOR_PX ** 2
    # Frames at a time, with the normal matrices (2 x points^2 each) kept near 64 MiB.
    chunk = max(1, min(chunk, (64 << 20) // (16 * points * points)))
    field = np.zeros((n_frames, 2, points))
    for first in range(0, n_frames, chunk):
        frames = slice(first, min(first + chunk, n_frames))
        count = frames.stop - frames.start
        row_weights, column_weights = (bilinear[axis][None] + shares[frames, None, None]
                                       * slope[axis][None] for axis in (0, 1))
        normal = np.zeros((count, 2, points, points))
        rhs = np.zeros((count, 2, points))
        for i, j, near, means in _patch_rows(weights, corners, side, row_weights,
                                             column_weights, frames):
            weight = inverse_variance[frames, i, j, :][..., None]  # (f, 2, 1)
            normal[:, :, near[:, None], near[None, :]] += (weight * means)[..., :, None] \
                * means[..., None, :]
            value = np.where(finite[frames, i, j, :], moves[frames, i, j, :], 0.0)
            rhs[:, :, near] += weight * value[..., None] * means
        for k in range(count):
            for axis in (0, 1):
                normal[k, axis] += CURVATURE_PENALTY * typical[first + k, axis] * curvature
                normal[k, axis] += identity
        field[frames] = np.linalg.solve(normal, rhs[..., None])[..., 0]
    return field.reshape(n_frames, 2, rows, cols)
