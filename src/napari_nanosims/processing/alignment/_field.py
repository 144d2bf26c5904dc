"""The displacement field of :mod:`.piecewise` from its patches' moves.

Three steps on the patches' moves (frames, rows, cols, 2) beyond the rigid
translation: their uncertainties calibrated on the data (:func:`calibrated_sigma`),
the test of whether the stack deforms at all (:func:`deformation_test`), and per
frame a smooth field at the grid points (:func:`smooth_field`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["calibrated_sigma", "chi_square", "deformation_test", "smooth_field",
           "SIGNIFICANCE_SIGMAS", "MIN_TESTED_PATCHES",
           "FRAME_SIGNIFICANCE_SIGMAS", "OVERLAP_FACTOR", "SMOOTHING_STEPS", "PRIOR_PX"]

#: The stack deforms when the chi-square of its patches' non-rigid moves exceeds its
#: degrees of freedom by this many of its standard deviations ...
SIGNIFICANCE_SIGMAS = 5.0
#: ... or when one frame's does by this many (a sudden change in a long stack; high,
#: as a frame's patches can go astray together: measured up to 11 on rigid spots).
FRAME_SIGNIFICANCE_SIGMAS = 15.0
#: Frames with fewer usable patches than this are left out of the deformation test.
MIN_TESTED_PATCHES = 4
#: Overlapping patches share pixels (half with each of the 4 side neighbours, a quarter
#: with the 4 diagonal ones), so their errors are correlated (about 0.5 and 0.25): the
#: chi-square's variance is 2 dof times 1 + 4 x 0.5^2 + 4 x 0.25^2 = 2.25.
OVERLAP_FACTOR = 2.25
#: Smoothing of the patch moves over their neighbours (Gaussian sigma, grid steps of half
#: a patch): overlapping patches already share half their pixels.
SMOOTHING_STEPS = 0.75
#: The field is shrunk toward the rigid result: a move of this much (1 sigma, px) beyond
#: the rigid one is as likely as not.
PRIOR_PX = 0.5


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
        centre[usable] = np.nanmedian(flat, axis=1)[usable]
    return np.where(finite, moves - centre[:, None, None, :], 0.0)


def calibrated_sigma(moves: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The patches' uncertainties (frames, rows, cols, 2), each patch's scaled up to the
    scatter its moves actually show from frame to frame.

    The predicted uncertainty of a patch with little structure (a smooth grain, an edge
    at the frame's border) can be several times too small. Noise is independent from
    frame to frame while a deformation changes slowly, so the second differences over
    consecutive frames (m[k+1] - 2 m[k] + m[k-1], variance s[k+1]^2 + 4 s[k]^2 +
    s[k-1]^2 for noise alone; a deformation growing linearly cancels) measure the noise:
    a patch whose second differences spread more than predicted gets its uncertainties
    multiplied by the ratio (never reduced).
    """
    residual = _non_rigid(moves, sigma)
    n_frames = moves.shape[0]
    if n_frames < 3:
        return sigma
    variance = sigma ** 2
    second = residual[2:] - 2 * residual[1:-1] + residual[:-2]
    expected = variance[2:] + 4 * variance[1:-1] + variance[:-2]
    finite = np.isfinite(expected)
    z2 = np.where(finite, second ** 2 / np.where(finite, expected, 1.0), 0.0)
    count = finite.sum(axis=(0, 3))
    # Second differences of white noise: mean z^2 is 1 (both axes pooled per patch).
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = z2.sum(axis=(0, 3)) / count
    ratio = np.where(count >= 4, ratio, np.nan)
    typical = np.nanmedian(ratio) if np.isfinite(ratio).any() else 1.0
    ratio = np.where(np.isfinite(ratio), ratio, typical)
    return sigma * np.sqrt(np.maximum(ratio, 1.0))[None, :, :, None]


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


def _local_planes(values, sigma, sources, targets, step_px: float, prior: float,
                  leave_out: bool = False):
    """Weighted local planes: the value (and its variance) at each target of one frame.

    ``values``, ``sigma`` (S, 2): the patches' moves per axis; ``sources`` (2, S, 2):
    where each axis's move was measured (row, column px); ``targets`` (T, 2). With
    ``leave_out`` (targets are the sources), each source is left out of its own plane.
    """
    offset = (sources[:, None, :, :] - targets[None, :, None, :]) / step_px  # (2, T, S, 2)
    near = np.exp(-np.sum(offset ** 2, axis=-1) / (2 * SMOOTHING_STEPS ** 2))
    if leave_out:
        near = near * (1.0 - np.eye(near.shape[1], near.shape[2]))[None]
    design = np.concatenate([np.ones(offset.shape[:3] + (1,)), offset], axis=-1)
    finite = np.isfinite(sigma)
    weight = np.where(finite, 1.0 / np.where(finite, sigma, 1.0) ** 2, 0.0)
    # (axis, target, source) weights; normal equations (axis, target, 3, 3).
    w = near * weight.T[:, None, :]
    normal = np.einsum("ats,atsp,atsq->atpq", w, design, design)
    rhs = np.einsum("ats,atsp,sa->atp", w, design, np.where(finite, values, 0.0))
    scale = normal[..., 0, 0]
    normal[..., 0, 0] += prior
    # A slope that the neighbours cannot fix (a single row of patches) stays 0.
    normal[..., 1, 1] += 1e-6 * scale + 1e-12
    normal[..., 2, 2] += 1e-6 * scale + 1e-12
    inverse = np.linalg.inv(normal)
    solution = np.einsum("atpq,atq->atp", inverse, rhs)
    return solution[..., 0], inverse[..., 0, 0]


def _sources(centres_k: np.ndarray) -> np.ndarray:
    """(rows, cols, axis, coordinate) -> (axis, patch, coordinate)."""
    return np.moveaxis(centres_k.reshape(-1, 2, 2), 1, 0)


def smooth_field(moves: np.ndarray, sigma: np.ndarray, centres: np.ndarray, grid,
                 step_px: float) -> np.ndarray:
    """Per frame, the field (frames, 2, rows, cols) at the grid points, pixels.

    At each grid point a local plane through the patches' moves, each where it was
    measured in its frame (``centres``, frames, rows, cols, axis, coordinate, px),
    weighted by one over its variance times a Gaussian of :data:`SMOOTHING_STEPS` grid
    steps (``step_px``): a plane keeps a linear field (shear, scaling) unbiased up to
    the frame's edges and takes the cut's offset from the grid point (the drift) into
    account. The plane's value is shrunk toward 0 by :data:`PRIOR_PX`.
    """
    n_frames, rows, cols = moves.shape[:3]
    targets = np.stack(np.meshgrid(np.asarray(grid[0], float), np.asarray(grid[1], float),
                                   indexing="ij"), axis=-1).reshape(-1, 2)
    field = np.zeros((n_frames, 2, rows, cols))
    for k in range(n_frames):
        values, _ = _local_planes(moves[k].reshape(-1, 2), sigma[k].reshape(-1, 2),
                                  _sources(centres[k]), targets, step_px, 1.0 / PRIOR_PX ** 2)
        field[k] = values.reshape(2, rows, cols)
    return field
