"""The patches' moves smoothed over the frames, as much as the data allow (:mod:`.piecewise`).

A deformation (charging, shrinkage, stage creep) changes slowly from frame to frame,
while each frame's patch moves carry independent noise. Each patch's move beyond its
frame's common move is therefore smoothed over the frames with a Whittaker smoother
(penalised least squares on the second differences, each frame weighted by one over
its variance), the smoothing chosen by generalised cross-validation (GCV) pooled over
the stack's patches: a deformation growing steadily over the frames is fitted by an
almost straight line through all frames, one that speeds up or slows down by a curve
(the GCV then chooses less smoothing). The frames' common moves (the rigid
registration's own error in every patch) are kept as measured. Only patches whose
course is steady at the noise level are smoothed (:func:`._field.steady_patches`):
a single series cannot tell a course that changes every frame from noise, and the
GCV would smooth it away.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["smooth_over_frames", "SMOOTHING_GRID"]

#: Smoothings tried (the penalty on the squared second differences, per unit of a
#: series' mean weight; log-spaced): from almost none to a straight line over 1000
#: frames.
SMOOTHING_GRID = 10.0 ** np.arange(-2.0, 12.01, 0.25)
#: Series with fewer measured frames than this are kept as they are.
MIN_FRAMES = 5


def _penalty_bands(n_frames: int) -> np.ndarray:
    """(3, n): the squared second differences over ``n`` frames as a quadratic form, in
    the upper banded form of ``scipy.linalg.solveh_banded`` (two bands above the
    diagonal)."""
    diagonal = np.full(n_frames, 6.0)
    first = np.full(n_frames - 1, -4.0)
    diagonal[[0, -1]], first[[0, -1]] = 1.0, -2.0  # the ends have fewer differences
    if n_frames > 3:
        diagonal[[1, -2]] = 5.0
    else:  # three frames: one second difference, (1, -2, 1)
        diagonal[1] = 4.0
    bands = np.zeros((3, n_frames))
    bands[2], bands[1, 1:], bands[0, 2:] = diagonal, first, 1.0
    return bands


def _choose_smoothing(series: np.ndarray, weights: np.ndarray, bands: np.ndarray) -> float:
    """The smoothing (per unit of a series' mean weight) of :data:`SMOOTHING_GRID` with
    the smallest GCV score pooled over ``series`` (S, n), weighted by ``weights`` (S, n).

    Scored with each series' mean weight in place of its weights (a patch's uncertainty
    changes little from frame to frame): the smoother's matrix is then ``I + s P`` for
    every series, one banded solve per smoothing for all of them, and its trace follows
    from the penalty's eigenvalues. Frames without a measurement are filled by linear
    interpolation between measured frames (the nearest value beyond the ends) for the
    score only. Pooled, not per series: 5-200 frames tell one
    series' smoothing poorly (per series, GCV smoothed some courses it should have
    followed, and the field was further off).
    """
    from scipy.linalg import eigvals_banded, solveh_banded

    eigenvalues = np.clip(eigvals_banded(bands), 0.0, None)
    n_series, n_frames = series.shape
    frames = np.arange(n_frames)
    filled = np.array([np.interp(frames, frames[w > 0], s[w > 0])
                       for s, w in zip(series, weights, strict=True)])
    mean_weight = np.array([w[w > 0].mean() for w in weights])
    n_total = float(filled.size)
    best, best_score = float(SMOOTHING_GRID[0]), np.inf
    for smoothing in SMOOTHING_GRID:
        matrix = smoothing * bands
        matrix[2] += 1.0
        fitted = solveh_banded(matrix, filled.T).T
        residual = float((mean_weight[:, None] * (filled - fitted) ** 2).sum())
        trace = n_series * float((1.0 / (1.0 + smoothing * eigenvalues)).sum())
        score = n_total * residual / max(n_total - trace, 1e-9) ** 2
        if score < best_score:
            best, best_score = float(smoothing), score
    return best


def smooth_over_frames(moves: np.ndarray, sigma: np.ndarray, steady: np.ndarray | None = None
                       ) -> np.ndarray:
    """The patches' moves (frames, rows, cols, 2; px) smoothed over the frames.

    Per frame what the patches share is kept as measured (their mean, then the median
    over the smoothed patches of their moves less their smoothed own courses); each
    patch's move beyond it is smoothed (see the module), weighted by ``1 / sigma**2``,
    with the smoothing GCV chooses for the stack. Only the patches ``steady`` marks (rows, cols;
    default: all) are smoothed (:func:`._field.steady_patches`: a course that jumps or
    swings from frame to frame is kept as measured), and only where ``sigma`` is finite
    (a patch measured in that frame); series with fewer than :data:`MIN_FRAMES` measured
    frames are kept as they are.

    The uncertainties are not changed: the field is fitted with the weights of the moves
    as measured. With the smoothed values' own, smaller uncertainties the fit leaned on
    the smoothed patches against their unsmoothed neighbours (a mineral's bulge: its
    worst patch at 2.5x its noise limit instead of 1.3x).
    """
    from scipy.linalg import solveh_banded

    moves = np.asarray(moves, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    n_frames = moves.shape[0]
    if n_frames < MIN_FRAMES:
        return moves.copy()
    finite = np.isfinite(sigma)
    weights = np.where(finite, 1.0 / np.where(finite, sigma, 1.0) ** 2, 0.0)
    steady_mask = (np.ones(moves.shape[1:3], dtype=bool) if steady is None
                   else np.asarray(steady, dtype=bool))
    # Series: one per patch and axis (rows, cols, axis), over the frames.
    series_weights = np.moveaxis(weights, 0, -1).reshape(-1, n_frames)
    usable = ((series_weights > 0).sum(axis=1) >= MIN_FRAMES) \
        & np.repeat(steady_mask.ravel(), 2)
    if not usable.any():
        return moves.copy()
    changed = finite & usable.reshape(moves.shape[1:])[None]  # the rest exactly as given
    bands = _penalty_bands(n_frames)
    # What a frame's patches share, first their mean; then, once each smoothed patch's
    # own course is known, the median over those patches of their moves less it: what
    # is left of a patch's move is the shared part plus noise, so a patch missing in a
    # frame or gone astray there does not move the others (a mean over whichever patches
    # are present moves every smoothed patch of that frame with them).
    centre = (np.where(finite, moves, 0.0).sum(axis=(1, 2))
              / np.maximum(finite.sum(axis=(1, 2)), 1))
    smoothing = None
    for _ in range(2):
        residual = np.where(finite, moves - centre[:, None, None, :], 0.0)
        series = np.moveaxis(residual, 0, -1).reshape(-1, n_frames)
        if smoothing is None:
            smoothing = _choose_smoothing(series[usable], series_weights[usable], bands)
        smoothed = series.copy()
        for index in np.flatnonzero(usable):
            weight = series_weights[index]
            matrix = smoothing * weight[weight > 0].mean() * bands
            matrix[2] += weight
            smoothed[index] = solveh_banded(matrix, weight * series[index])
        own = np.moveaxis(smoothed.reshape(moves.shape[1:] + (n_frames,)), -1, 0)
        left = np.where(changed, moves - own, np.nan).reshape(n_frames, -1, 2)
        with warnings.catch_warnings():  # a frame without a smoothed patch: its mean
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(left, axis=1)
        centre = np.where(np.isfinite(median), median, centre)
    smoothed_moves = own + centre[:, None, None, :]
    return np.where(changed, smoothed_moves, moves)
