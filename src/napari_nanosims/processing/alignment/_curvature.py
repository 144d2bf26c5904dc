"""Whether a deforming stack's field bends within the reach of a patch (:mod:`.piecewise`).

A patch measures the mean of the field over its window, and the field is bilinear
between grid points half a patch apart. Where the field is affine (shear, scaling,
drift) both are exact, and large patches win: their moves carry less noise. Where the
field bends over a patch (a local bulge, a fold), the patch means and the bilinear
grid cannot follow it, and that model error outgrows the noise: smaller patches follow
it. On 128² stacks with a 3 px bulge over cells, 32 px patches left 0.19-0.21 px per
pixel where 48 px patches left 0.29-0.31 px; on shear and scaling of a smooth mineral
the 48 px patches were the better, 0.24-0.34 px against 0.35-0.53 px (a scratch run of
this round; ``docs/processing.md`` has the benchmark). :func:`bends` tells the two
apart: the patches' moves are fitted by a constant per patch and per frame an affine
field (each patch placed at its structure's centroid, the mean its registration
measures), and the misfit is tested against the moves' calibrated uncertainties.
"""

from __future__ import annotations

import numpy as np

from ._field import MIN_TESTED_PATCHES, OVERLAP_FACTOR, _non_rigid

__all__ = ["affine_misfit", "bends", "BEND_SIGMAS", "BEND_EXCESS"]

#: The field bends when the affine misfit's chi-square exceeds its degrees of freedom by
#: this many of its standard deviations (as the deformation test) ...
BEND_SIGMAS = 5.0
#: ... and by this much per degree of freedom: the misfit beyond noise, in units of the
#: moves' variance. Patches of two thirds the side have 2.25x the noise variance (1.25
#: more), so they pay only where the misfit they remove is larger than that. Measured
#: at 48 px (128², 2 and 4 counts, 20 and 40 frames, seeds 1-2): 3 px bulges 6.9-43 on
#: cells and 1.0-5.6 on a smooth mineral (refined in 5 of 8 there: at 2 counts its
#: bulge barely outgrows the noise of 32 px patches); shear and scaling -0.4 to 0.6.
BEND_EXCESS = 2.0
#: Rounds of the alternating fit of :func:`affine_misfit` (per-patch constants, then
#: per-frame affine fields): on the tests' stacks (affine, bulging) the misfit did not
#: change from the fourth on.
FIT_ROUNDS = 8


def _centroids(weights: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Where each frame's patch measures, per axis: the centroid of the pixels'
    weights (``weights`` (rows, cols, 2, side, side)) plus the frame's cut corner
    (``corners`` (frames, rows, cols, 2)); (frames, rows, cols, 2 axes, 2 coordinates)
    pixels. A patch with no weights is placed at its window's centre."""
    side = weights.shape[-1]
    total = weights.sum(axis=(3, 4))
    safe = np.where(total > 0, total, 1.0)
    inside = np.arange(side, dtype=np.float64)
    centre = (side - 1) / 2.0
    row = np.where(total > 0, (weights.sum(axis=4) @ inside) / safe, centre)
    column = np.where(total > 0, (weights.sum(axis=3) @ inside) / safe, centre)
    within = np.stack([row, column], axis=-1)  # (rows, cols, 2 axes, 2 coordinates)
    return corners[:, :, :, None, :].astype(np.float64) + within[None]


def _affine_fit(values: np.ndarray, weight: np.ndarray, design: np.ndarray):
    """Per frame and axis, the weighted least-squares affine fit: ``values``, ``weight``
    (frames, patches, 2), ``design`` (frames, patches, 2, 3). Returns the fitted values
    and each patch's leverage (its share of its own fit), both (frames, patches, 2). A
    frame without weights gets zeros (a tiny ridge keeps its matrix invertible)."""
    normal = np.einsum("fpa,fpai,fpaj->faij", weight, design, design)
    scale = np.trace(normal, axis1=2, axis2=3)[..., None, None]
    normal = normal + (1e-12 * scale + 1e-300) * np.eye(3)
    inverse = np.linalg.inv(normal)
    coefficients = np.einsum("faij,fpaj,fpa,fpa->fai", inverse, design, weight, values)
    fitted = np.einsum("fpai,fai->fpa", design, coefficients)
    leverage = weight * np.einsum("fpai,faij,fpaj->fpa", design, inverse, design)
    return fitted, leverage


def affine_misfit(moves: np.ndarray, sigma: np.ndarray, weights: np.ndarray,
                  corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the chi-square of the patches' moves about the best affine field, its
    most deviant patch left out, and its expected value for noise alone.

    ``moves``, ``sigma`` (frames, rows, cols, 2) as :func:`._field.chi_square`. The model
    is, per axis, a constant per patch over the frames (each patch's moves were centred
    on their median over the frames, which a deformation makes a value of its own) plus
    per frame an affine field (a move and its gradient along rows and columns) at the
    patch's centroid, fitted by weighted least squares (one over the variances),
    alternating the two parts (:data:`FIT_ROUNDS`). In each frame the patch whose
    residual stands out most (scaled by its leverage, so that a patch that pulled the
    fit toward itself is found) is left out and the frame fitted again: one patch gone
    astray is no bend. Frames with fewer than :data:`._field.MIN_TESTED_PATCHES` + 3
    usable patches are not tested.
    """
    residual = _non_rigid(moves, sigma)
    finite = np.isfinite(sigma)
    n_frames = moves.shape[0]
    values = residual.reshape(n_frames, -1, 2)
    weight = np.where(finite, 1.0 / np.where(finite, sigma, 1.0) ** 2, 0.0).reshape(
        n_frames, -1, 2)
    position = _centroids(weights, corners).reshape(n_frames, -1, 2, 2)
    # Centred on each frame's weighted mean position: a well-conditioned 3 x 3 fit.
    total = np.maximum(weight.sum(axis=1, keepdims=True), 1e-300)[..., None]
    position = position - (weight[..., None] * position).sum(axis=1, keepdims=True) / total
    design = np.concatenate([np.ones(position.shape[:3] + (1,)), position], axis=3)
    usable = np.all(finite, axis=-1).reshape(n_frames, -1)
    offset = np.zeros(values.shape[1:])
    for _ in range(FIT_ROUNDS):
        target = values - offset
        fitted, leverage = _affine_fit(target, weight, design)
        # The most deviant patch of each frame (both axes), by its residual scaled up by
        # its leverage: what it would show in a fit without it.
        scaled = (weight * (target - fitted) ** 2
                  / np.maximum(1.0 - leverage, 1e-3)).sum(axis=2)
        keep = weight.copy()
        worst = np.argmax(np.where(usable, scaled, -1.0), axis=1)
        keep[np.arange(n_frames), worst] = 0.0
        fitted, _ = _affine_fit(target, keep, design)
        kept = keep.sum(axis=0)
        offset = np.where(kept > 0, (keep * (values - fitted)).sum(axis=0)
                          / np.where(kept > 0, kept, 1.0), 0.0)
    chi2 = (keep * (values - offset - fitted) ** 2).sum(axis=(1, 2))
    count = usable.sum(axis=1)
    harmonic = np.array([np.sum(1.0 / np.arange(1, m + 1)) for m in count])
    expected = np.maximum(2.0 * (count - 3) - 2.0 * harmonic, 0.0)
    tested = count >= MIN_TESTED_PATCHES + 3
    return np.where(tested, chi2, 0.0), np.where(tested, expected, 0.0)


def bends(moves: np.ndarray, sigma: np.ndarray, weights: np.ndarray,
          corners: np.ndarray) -> bool:
    """Whether the field bends beyond what an affine field and the noise explain, by
    more than smaller patches' extra noise: the chi-square of :func:`affine_misfit` over
    all frames exceeds its degrees of freedom by :data:`BEND_SIGMAS` of its standard
    deviations (widened by :data:`._field.OVERLAP_FACTOR`, and one in ``frames`` of the
    degrees of freedom taken by each patch's median over the frames, as
    :func:`._field.deformation_test`) and by :data:`BEND_EXCESS` per degree of freedom.
    Never with fewer than 3 patches along either axis.
    """
    if min(weights.shape[:2]) < 3:
        return False  # a bend shows only with three patches or more along each axis
    chi2, dof = affine_misfit(moves, sigma, weights, corners)
    n_frames = moves.shape[0]
    total, total_dof = float(chi2.sum()), float(dof.sum()) * (n_frames - 1) / max(n_frames, 1)
    if total_dof <= 0:
        return False
    excess = total - total_dof
    return bool(excess > BEND_SIGMAS * np.sqrt(2 * OVERLAP_FACTOR * total_dof)
                and excess > BEND_EXCESS * total_dof)
