"""Statistics on the patches' moves of :mod:`.piecewise` (the field's fit itself is in
:mod:`._fit`).

Steps on the patches' moves (frames, rows, cols, 2) beyond the rigid translation:
which patches move steadily over the frames (:func:`steady_patches`, judged on the
predicted uncertainties; :mod:`._temporal` smooths those), their uncertainties
calibrated on the data (:func:`calibrated_sigma`), the test of whether the stack
deforms at all (:func:`deformation_test`), and per frame the field at the grid points
whose patch means reproduce the moves (:func:`._fit.consistent_field`).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["calibrated_sigma", "chi_square", "deformation_test",
           "steady_patches", "STEADY_SIGMAS", "SECOND_DIFFERENCE_SPREAD", "JUMP_FALSE_RATE",
           "SIGNIFICANCE_SIGMAS", "MIN_TESTED_PATCHES",
           "FRAME_SIGNIFICANCE_SIGMAS", "OVERLAP_FACTOR"]

#: The stack deforms when the chi-square of its patches' non-rigid moves exceeds its
#: degrees of freedom by this many of its standard deviations ...
SIGNIFICANCE_SIGMAS = 5.0
#: ... or when one frame's does by this many (a sudden change in a long stack; high,
#: as a frame's patches can go astray together: measured up to 11 on rigid spots).
FRAME_SIGNIFICANCE_SIGMAS = 15.0
#: Frames with fewer usable patches than this are left out of the deformation test.
MIN_TESTED_PATCHES = 4
#: A patch's moves are smoothed over the frames only when their second differences'
#: mean square exceeds 1 by at most this many of its standard deviations
#: (:func:`steady_patches`).
STEADY_SIGMAS = 3.0
#: ... and when no change of a patch's move from one frame to the next stands out from
#: its noise by more than this rate allows (per patch, all its changes together).
JUMP_FALSE_RATE = 1e-3
#: What a frame's patches share leaves out a patch further than this many of their
#: spreads (1.4826 median absolute deviations, at least the typical noise) from their
#: median (:func:`_differences`).
SHARED_OUTLIER_SPREADS = 5.0
#: The variance of the mean of n squared second differences of white noise, times n: 2
#: for independent squares, times 1 + 2 (rho1^2 + rho2^2) for consecutive second
#: differences correlated by rho1 = -4/6 and rho2 = 1/6 (the squares of correlated
#: normal variables are correlated by rho^2): 2 x 1.944.
SECOND_DIFFERENCE_SPREAD = 2.0 * (1.0 + 2.0 * (16.0 + 1.0) / 36.0)
#: Overlapping patches share pixels (half with each of the 4 side neighbours, a quarter
#: with the 4 diagonal ones), so their errors are correlated (about 0.5 and 0.25): the
#: chi-square's variance is 2 dof times 1 + 4 x 0.5^2 + 4 x 0.25^2 = 2.25.
OVERLAP_FACTOR = 2.25


def _non_rigid(moves: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The moves less each frame's median over the patches (per axis): a move shared by
    every patch is a translation, which the rigid registration owns (its own error is in
    every patch's move). The median, not a mean: one patch gone astray would move a mean
    and with it every other patch's residual."""
    finite = np.isfinite(sigma)
    flat = np.where(finite, moves, np.nan).reshape(moves.shape[0], -1, 2)
    usable = finite.reshape(moves.shape[0], -1, 2).any(axis=1)
    centre = np.zeros((moves.shape[0], 2))
    if usable.any():
        with warnings.catch_warnings():  # a frame without a measured patch: all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            centre[usable] = np.nanmedian(flat, axis=1)[usable]
    return np.where(finite, moves - centre[:, None, None, :], 0.0)


def _scatter_ratio(moves: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per patch (rows, cols): the mean square of its moves' second differences over
    consecutive frames in units of their predicted variance (both axes pooled; NaN with
    fewer than 4), and how many there are.

    Noise is independent from frame to frame while a deformation changes slowly: the
    second differences (m[k+1] - 2 m[k] + m[k-1], variance s[k+1]^2 + 4 s[k]^2 + s[k-1]^2
    for noise alone; a deformation growing linearly cancels) of noise alone have a mean
    square of 1.
    """
    residual = _non_rigid(moves, sigma)
    variance = sigma ** 2
    second = residual[2:] - 2 * residual[1:-1] + residual[:-2]
    expected = variance[2:] + 4 * variance[1:-1] + variance[:-2]
    finite = np.isfinite(expected)
    z2 = np.where(finite, second ** 2 / np.where(finite, expected, 1.0), 0.0)
    count = finite.sum(axis=(0, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = z2.sum(axis=(0, 3)) / count
    return np.where(count >= 4, ratio, np.nan), count


def calibrated_sigma(moves: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The patches' uncertainties (frames, rows, cols, 2), each patch's scaled up to the
    scatter its moves actually show from frame to frame.

    The predicted uncertainty of a patch with little structure (a smooth grain, an edge
    at the frame's border) can be several times too small. A patch whose second
    differences over consecutive frames spread more than predicted
    (:func:`_scatter_ratio`) gets its uncertainties multiplied by the ratio (never
    reduced); one with too few frames by the stack's typical ratio.
    """
    if moves.shape[0] < 3:
        return sigma
    ratio = _scatter_ratio(moves, sigma)[0]
    typical = np.nanmedian(ratio) if np.isfinite(ratio).any() else 1.0
    ratio = np.where(np.isfinite(ratio), ratio, typical)
    return sigma * np.sqrt(np.maximum(ratio, 1.0))[None, :, :, None]


def _differences(moves: np.ndarray, sigma: np.ndarray, order: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The moves' differences of ``order`` (1 or 2) over consecutive frames, less what
    the frame's patches share (the rigid registration's part), and their variance for
    noise alone; (frames - order, rows, cols, 2), NaN where a patch was not measured or
    fewer than two patches were.

    What they share is the mean over the patches, leaving out a patch far from the rest
    (beyond :data:`SHARED_OUTLIER_SPREADS` of their spread around the median: a patch
    gone astray in one frame would move the mean, and with it every other patch's
    difference). A mean, not a median: when the patches' differences spread (a scaling
    that grows) the median follows whichever patch is in the middle, noise and all,
    while the mean of n has one over n of their variances.
    """
    coefficients = (-1.0, 1.0) if order == 1 else (1.0, -2.0, 1.0)
    count = moves.shape[0] - order
    value = sum(c * moves[i:i + count] for i, c in enumerate(coefficients))
    variance = sum(c * c * sigma[i:i + count] ** 2 for i, c in enumerate(coefficients))
    finite = np.isfinite(variance) & (variance > 0)
    value = np.where(finite, value, np.nan)
    with warnings.catch_warnings():  # frames without a measured patch: all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        middle = np.nanmedian(value, axis=(1, 2), keepdims=True)
        spread = np.maximum(1.4826 * np.nanmedian(np.abs(value - middle), axis=(1, 2),
                                                  keepdims=True),
                            np.sqrt(np.nanmedian(np.where(finite, variance, np.nan),
                                                 axis=(1, 2), keepdims=True)))
    kept = finite & (np.abs(np.nan_to_num(value - middle)) <= SHARED_OUTLIER_SPREADS
                     * np.nan_to_num(spread))
    variance = np.where(finite, variance, 0.0)
    patches = kept.sum(axis=(1, 2), keepdims=True)
    per = np.maximum(patches, 1)
    shared = np.where(kept, value, 0.0).sum(axis=(1, 2), keepdims=True) / per
    # Less the mean: its variance (sum / n^2) and, for a patch in it, twice its share
    # (-2 v / n).
    variance = (variance * (1.0 - 2.0 * kept / per)
                + np.where(kept, variance, 0.0).sum(axis=(1, 2), keepdims=True) / per ** 2)
    usable = finite & (patches >= 2)
    return (np.where(usable, value - shared, np.nan),
            np.where(usable, variance, np.nan))


def _local_slope(first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per first difference (frames - 1, rows, cols, 2): the median of the patch's first
    differences 2-4 frames before and after (6 at most; none adjacent, so that none
    shares a frame with it): the course's local slope, which follows a course that
    speeds up or slows down (charging that saturates) while a single jump stays out;
    and how many of those neighbours were measured."""
    n_changes = first.shape[0]
    padded = np.concatenate([np.full((4,) + first.shape[1:], np.nan), first,
                             np.full((4,) + first.shape[1:], np.nan)])
    neighbours = np.stack([padded[4 + offset:4 + offset + n_changes]
                           for offset in (-4, -3, -2, 2, 3, 4)])
    with warnings.catch_warnings():  # no neighbour measured: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(neighbours, axis=0), np.isfinite(neighbours).sum(axis=0)


def _steadiness(moves: np.ndarray, sigma: np.ndarray):
    """Per patch (rows, cols): the mean square of its second differences in units of
    their variance, how many there are, the largest first difference beyond its local
    slope (:func:`_local_slope`) in units of its spread, and how many such first
    differences there are (both axes pooled; see :func:`steady_patches`)."""
    second, second_variance = _differences(moves, sigma, 2)
    finite = np.isfinite(second)
    count = finite.sum(axis=(0, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(finite, second ** 2 / np.where(finite, second_variance, 1.0),
                         0.0).sum(axis=(0, 3)) / count
    first, first_variance = _differences(moves, sigma, 1)
    slope, neighbours = _local_slope(first)
    finite = np.isfinite(first) & np.isfinite(slope)
    # Less the median of m neighbours (independent of it): about (pi / 2) / m of the
    # variance more.
    widened = first_variance * (1.0 + np.pi / 2 / np.maximum(neighbours, 1))
    z = np.where(finite, np.abs(first - slope) / np.sqrt(np.where(finite, widened, 1.0)),
                 0.0)
    return (np.where(count >= 4, ratio, np.nan), count, z.max(axis=(0, 3), initial=0.0),
            finite.sum(axis=(0, 3)))


def steady_patches(moves: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: patches whose moves change from frame to frame no more than
    their predicted uncertainties ``sigma`` allow, so that what they show over the frames
    is noise around a slow course, which smoothing over the frames may take out
    (:mod:`._temporal`). Two tests at noise level (:func:`_steadiness`), on the moves
    less what the frame's patches share:

    - the second differences' mean square within :data:`STEADY_SIGMAS` of its spread for
      noise alone above 1 (a course that swings);
    - no change from one frame to the next beyond the course's local slope (the median
      change a few frames before and after) by more than noise would make about once in
      1 / :data:`JUMP_FALSE_RATE` patches (a course that jumps: the mean square spreads
      a single jump over all the frames).

    A prediction that is too small (a smooth grain) fails too: such a patch is kept as
    measured.
    """
    if moves.shape[0] < 3:
        return np.zeros(moves.shape[1:3], dtype=bool)
    from scipy.special import ndtri

    ratio, count, jump, changes = _steadiness(moves, sigma)
    spread = np.sqrt(SECOND_DIFFERENCE_SPREAD / np.maximum(count, 1))
    # Two-sided, Bonferroni over the patch's changes (consecutive ones are correlated,
    # so the true rate is lower).
    threshold = -ndtri(JUMP_FALSE_RATE / (2.0 * np.maximum(changes, 1)))
    return np.isfinite(ratio) & (ratio <= 1.0 + STEADY_SIGMAS * spread) & (jump <= threshold)


def chi_square(moves: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the chi-square of the patches' non-rigid moves, less its largest
    patch's, and its expected value for noise alone.

    Two degrees of freedom per usable patch, less the two of the frame's own
    translation. The largest patch is left out so that one patch gone astray in one
    frame (a lock onto noise) does not make a deformation: a deformation moves
    overlapping patches together. For noise alone the largest of m chi-squares of 2
    degrees of freedom is 2 (1 + 1/2 + ... + 1/m) on average, which the expected value
    takes off.
    """
    residual = _non_rigid(moves, sigma)
    finite = np.isfinite(sigma)
    per_patch = np.where(finite, residual ** 2 / np.where(finite, sigma, 1.0) ** 2,
                         0.0).sum(axis=-1).reshape(moves.shape[0], -1)
    usable = np.all(finite, axis=-1).reshape(moves.shape[0], -1).sum(axis=1)
    chi2 = per_patch.sum(axis=1) - per_patch.max(axis=1, initial=0.0)
    harmonic = np.array([np.sum(1.0 / np.arange(1, m + 1)) for m in usable])
    expected = np.maximum(2.0 * (usable - 1) - 2.0 * harmonic, 0.0)
    # With fewer usable patches the median leaves residuals tied to each other (with
    # two, equal and opposite; with three, one is zero), which the expected value
    # above does not describe: such a frame is not tested (its chi-square would count
    # with no degrees of freedom: a rigid SE grain at 0.5 counts made 63 on 6).
    tested = usable >= MIN_TESTED_PATCHES
    return np.where(tested, chi2, 0.0), np.where(tested, expected, 0.0)


def deformation_test(moves: np.ndarray, sigma: np.ndarray) -> bool:
    """Whether the stack deforms: its patches' non-rigid moves beyond their noise.

    The chi-square (:func:`chi_square`) over all frames against
    :data:`SIGNIFICANCE_SIGMAS`, or one frame's against
    :data:`FRAME_SIGNIFICANCE_SIGMAS` (standard deviations of a chi-square whose
    variance :data:`OVERLAP_FACTOR` widens). Each patch's median over the frames was
    removed, which takes one in ``frames`` of the degrees of freedom.
    """
    chi2, dof = chi_square(moves, sigma)
    n_frames = moves.shape[0]
    dof = dof * (n_frames - 1) / max(n_frames, 1)
    total, total_dof = float(chi2.sum()), float(dof.sum())
    if total_dof <= 0:
        return False
    if total > total_dof + SIGNIFICANCE_SIGMAS * np.sqrt(2 * OVERLAP_FACTOR * total_dof):
        return True
    limit = dof + FRAME_SIGNIFICANCE_SIGMAS * np.sqrt(2 * OVERLAP_FACTOR * dof)
    return bool(np.any((dof > 0) & (chi2 > limit)))
