"""Non-rigid drift: overlapping patches registered rigidly, and the field they measure.

The stack is first registered as a whole (the 'subpixel' method). Then overlapping
square patches (a side chosen from the counts, half a side apart) are registered the
same way, each frame's patch cut where the rigid translation put its content (whole
pixels, so nothing is resampled) and refined from the rigid translation's fraction.
What a patch moves beyond the rigid translation, with its uncertainty, is the mean of
the displacement field over the window *where that frame's patch was cut* (the field
is in the input frame's pixels, and the cut follows the drift), weighted by the
patch's structure. Each patch's moves are smoothed over the frames as far as the data
allow (:func:`._temporal.smooth_over_frames`: a deformation changes slowly, the noise
does not), and per frame the field at the grid points (the patch centres) is the
one whose weighted means reproduce the patches' moves
(:func:`._fit.consistent_field`). The frames moved back by that field are
registered patch by patch once more, and the field of what they still move is added
(:func:`_refined`: a rigid patch measures its pixels' moves to first order only). The
field is kept only when the stack deforms beyond its noise (:func:`._field.deformation_test`:
the patches' moves beyond a common translation, against uncertainties calibrated on
the data), so a stack that drifts rigidly keeps its rigid result exactly. Patches with
too few counts to register (flagged frames, or a patch mostly flagged) carry no
weight; where no patch registers the result falls back to the rigid one, with a
warning.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Generator

import numpy as np

from ..._errors import AlignmentWarning
from ..._progress import run_to_completion
from .._frames import map_frames
from ._field import calibrated_sigma, deformation_test, steady_patches
from ._fit import consistent_field
from ._temporal import smooth_over_frames
from .registration import MAX_PASSES, FrameRegistration, iter_register
from .subpixel import TAPER_SMOOTHING_WIDTHS, edge_taper
from .warp import displacement_at_pixels

__all__ = ["iter_register_piecewise", "patch_size_px", "patch_side_px", "PATCH_COUNTS",
           "MIN_PATCH_PX"]

#: Counts a patch should hold per frame (sets the patch side from the mean count).
PATCH_COUNTS = 4000.0
#: Smallest patch side, pixels.
MIN_PATCH_PX = 48
#: A patch's move is used when its correlation is this many times its noise level
#: (lower than a whole frame's FLAG_SIGNIFICANCE: a wrong move shows in the scatter
#: of the patch's moves, which calibrates its uncertainty) ...
PATCH_SIGNIFICANCE = 3.0
#: ... and up to this uncertainty (1 sigma, either axis), pixels.
PATCH_UNCERTAINTY_PX = 1.5


def patch_size_px(mean_counts: float, shape) -> int:
    """Side of the patches, pixels: enough for :data:`PATCH_COUNTS` counts per frame, at
    least :data:`MIN_PATCH_PX`, at most half the frame; a multiple of 8."""
    wanted = np.sqrt(PATCH_COUNTS / max(float(mean_counts), 1e-9))
    side = int(np.ceil(max(wanted, MIN_PATCH_PX) / 8) * 8)
    return int(min(side, min(shape) // 2))


def patch_side_px(registration: FrameRegistration) -> int:
    """The side of the patches a piecewise registration's field came from, pixels: its
    first grid point lies half a side (less half a pixel) in."""
    grid = registration.displacement_grid_px
    if grid is None:
        raise ValueError("the registration has no displacement field (not 'piecewise')")
    return int(round(2 * float(grid[0][0]) + 1))


def _starts(length: int, side: int) -> np.ndarray:
    """Patch starts half a side apart, the last one flush with the end."""
    if side >= length:
        return np.array([0])
    starts = np.arange(0, length - side + 1, max(side // 2, 1))
    if starts[-1] != length - side:
        starts = np.append(starts, length - side)
    return starts


def _cut(stack: np.ndarray, start, side: int, whole: np.ndarray):
    """Each frame's patch, cut where the rigid move put its content; the offsets (how
    much lower and further right than its content's place the patch was cut) and each
    frame's cut corner (frames, 2), pixels."""
    n_frames, height, width = stack.shape
    top = np.clip(start[0] - whole[:, 0], 0, height - side)
    left = np.clip(start[1] - whole[:, 1], 0, width - side)
    patch = np.stack([stack[k, top[k]:top[k] + side, left[k]:left[k] + side]
                      for k in range(n_frames)])
    # A patch cut ``start - top`` lower holds content that needs that much more move.
    offsets = np.column_stack([start[0] - top, start[1] - left]).astype(np.float64)
    return patch, offsets, np.column_stack([top, left])


def _patch_moves(stack, rigid: FrameRegistration, side: int, starts, upsample_factor: int,
                 progress) -> Generator[int, None, tuple]:
    """Register every patch; returns (moves, sigma, weights, corners, unusable).

    ``moves`` (frames, rows, cols, 2): what each frame's patch moves beyond the rigid
    translation (median over the frames removed), pixels; ``sigma`` the same shape, its
    predicted uncertainty (inf where the patch did not register); ``weights`` (rows,
    cols, 2, side, side): per axis, how much each of a patch's pixels weighs in its
    move (:func:`_patch_weights`); ``corners`` (frames, rows, cols, 2): where each
    frame's patch was cut (row, column px); ``unusable`` the number of patches mostly
    flagged.
    """
    n_frames = stack.shape[0]
    row_starts, col_starts = starts
    translations = rigid.translations
    whole = np.round(translations).astype(np.int64)
    shape = (n_frames, row_starts.size, col_starts.size, 2)
    moves, sigma = np.zeros(shape), np.full(shape, np.inf)
    corners = np.zeros(shape, dtype=np.int64)
    weights = np.zeros((row_starts.size, col_starts.size, 2, side, side))
    unusable = 0
    for i, top in enumerate(row_starts):
        for j, left in enumerate(col_starts):
            patch, offsets, corners[:, i, j] = _cut(stack, (top, left), side, whole)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a patch that does not register is no error
                # Uncertainties from the lag's Hessian, which calibrated_sigma scales to
                # the patch's scatter: the thresholds below and the deformation test
                # were set on them (with the window's term, a smooth grain's patches
                # exceed PATCH_UNCERTAINTY_PX in a third of the frames and the test
                # then finds a field in a stack that only drifts).
                result = run_to_completion(iter_register(patch, upsample_factor, None, None,
                                                         initial=translations - offsets,
                                                         window_term=False))
            yield progress(i * col_starts.size + j + 1)
            # A frame's patch counts when its correlation stands out of the noise; an
            # uncertainty that would flag a whole frame (0.5 px) still carries weight
            # here (one over its variance): edge patches are often that uncertain.
            good = ((result.significance >= PATCH_SIGNIFICANCE)
                    & np.all(result.uncertainty_px <= PATCH_UNCERTAINTY_PX, axis=1))
            if good.mean() < 0.5:
                unusable += 1
                continue
            measured = result.measured + offsets - translations
            measured -= np.median(measured[good], axis=0)
            moves[good, i, j] = measured[good]
            sigma[good, i, j] = np.maximum(result.uncertainty_px[good], 1e-3)
            weights[i, j] = _patch_weights(patch[good], result)
    return moves, sigma, weights, corners, unusable


def _patch_weights(patch: np.ndarray, result: FrameRegistration) -> np.ndarray:
    """How much each pixel of a patch weighs in its move: (2 axes, side, side).

    A rigid registration of a patch that deforms measures the moves of its pixels
    weighted by how much each tells about the shift: a correlation's row shift weighs
    pixels by the squared row gradient of the (band-passed, smoothed) image, under the
    registration's window (squared: frame and reference both carry it). The field is
    fitted to these weighted means (:func:`._fit.consistent_field`), not to the
    patch's centre: a patch whose cells sit 10 px off its centre, or a bulge narrower
    than the patch, would otherwise be misplaced. A patch with no structure at all
    weighs its window evenly.
    """
    from scipy import ndimage

    side = patch.shape[-1]
    mean = patch.mean(axis=0, dtype=np.float64)
    smoothing = result.smoothing_px if np.isfinite(result.smoothing_px) else 1.0
    image = ndimage.gaussian_filter(mean, smoothing)
    if np.isfinite(result.high_pass_px):
        image = image - ndimage.gaussian_filter(mean, result.high_pass_px)
    # Frame and reference are both tapered by the window: its square weighs the product.
    window = edge_taper((side, side), TAPER_SMOOTHING_WIDTHS * smoothing) ** 2
    weights = np.stack([window * np.gradient(image, axis=axis) ** 2 for axis in (0, 1)])
    for axis in (0, 1):
        if not weights[axis].sum() > 0:
            weights[axis] = window
    return weights


def iter_register_piecewise(data, upsample_factor: int, region=None, rigid=None,
                            patch_px=None) -> Generator[int, None, FrameRegistration]:
    """Register a (frames, H, W) stack rigidly, then its patches; see the module.

    Returns the rigid :class:`FrameRegistration` with ``displacement_px`` (frames, 2,
    rows, cols: the move beyond each frame's translation at the patch centres, pixels,
    in the input frame's pixels) and ``displacement_grid_px`` (the centres' row and
    column coordinates).
    """
    stack = np.asarray(data)
    n_frames, height, width = stack.shape
    # Progress: the rigid registration's steps, then as many again over the patches.
    budget = 2 + n_frames * (1 + MAX_PASSES)
    if rigid is None:
        rigid = yield from iter_register(stack, upsample_factor, None, region)
    mean_counts = float(np.mean(stack[np.unique(np.linspace(0, n_frames - 1, 8).astype(int))],
                                dtype=np.float64))
    side = int(patch_px) if patch_px is not None else patch_size_px(mean_counts,
                                                                    (height, width))
    if side < 16 or side > min(height, width):
        raise ValueError(f"patch_px must be from 16 to the frame size ({min(height, width)} "
                         f"px); got {side}")
    row_starts, col_starts = _starts(height, side), _starts(width, side)
    grid = (row_starts + (side - 1) / 2.0, col_starts + (side - 1) / 2.0)
    n_patches = row_starts.size * col_starts.size
    # Progress: the patches, then (a stack that deforms) the patches once more.
    moves, sigma, weights, corners, unusable = yield from _patch_moves(
        stack, rigid, side, (row_starts, col_starts), upsample_factor,
        lambda done: budget + (budget * done) // (2 * n_patches))
    field = np.zeros((n_frames, 2, grid[0].size, grid[1].size))
    if unusable == n_patches:
        warnings.warn(f"piecewise alignment: none of the {n_patches} patches of {side} x "
                      f"{side} px holds enough counts to register; the rigid (subpixel) "
                      "alignment is used", AlignmentWarning, stacklevel=3)
        return dataclasses.replace(rigid, displacement_px=field, displacement_grid_px=grid)
    if unusable:
        warnings.warn(f"piecewise alignment: {unusable} of {n_patches} patches of {side} "
                      f"x {side} px have too few counts to register; the field there "
                      "comes from their neighbours (rigid where none registers)",
                      AlignmentWarning, stacklevel=3)
    fitted = _fitted_field(moves, sigma, weights, corners, side, grid, (height, width),
                           test=True)
    if fitted is not None:
        field = yield from _refined(stack, rigid, fitted, grid, side, (row_starts, col_starts),
                                    upsample_factor, lambda done: budget + budget // 2
                                    + (budget * done) // (2 * n_patches))
    return dataclasses.replace(rigid, displacement_px=field, displacement_grid_px=grid)


def _fitted_field(moves, sigma, weights, corners, side: int, grid, shape, test: bool = False,
                  added_to=None):
    """The field (frames, 2, rows, cols) of the patches' ``moves`` and predicted ``sigma``
    (:func:`_patch_moves`): which patches are steady (judged on the predicted
    uncertainties), the uncertainties calibrated on the scatter, the steady patches
    smoothed over the frames, the field fitted. With ``test``: None unless the stack
    deforms (:func:`._field.deformation_test`, on the moves as measured; smoothed only
    once the stack is known to deform); ``added_to``: as
    :func:`._fit.consistent_field`'s."""
    steady = steady_patches(moves, sigma)
    sigma = calibrated_sigma(moves, sigma)
    if test and not deformation_test(moves, sigma):
        return None
    return consistent_field(smooth_over_frames(moves, sigma, steady), sigma, weights,
                            corners, side, grid, shape, added_to=added_to)


def _refined(stack: np.ndarray, rigid: FrameRegistration, field: np.ndarray, grid, side: int,
             starts, upsample_factor: int, progress) -> Generator[int, None, np.ndarray]:
    """``field`` (frames, 2, rows, cols) plus what the patches still move once each frame
    is moved back by it.

    A patch's rigid registration measures a weighted mean of its pixels' moves only to
    first order in how much they differ across it: where a 48 px patch is sheared by 2
    px, its move was biased by about the noise limit of cells at 4 counts (0.04-0.06 px
    per axis), and smoothing over the frames does not remove a bias that grows with the
    deformation. Each frame is moved back by the field (not by its translation: the
    patches are cut as before), so what the patches measure now is the field's error,
    small across a patch, and the field fitted to it is added.

    The residual is fitted with the share of slope beyond the outer grid points that the
    sum implies (:func:`._fit.consistent_field`'s ``added_to``), but the frames were
    moved back with the field's own share: where the two differ (a share inside the
    ramp of :func:`.warp.affine_share` that the residual moves), the field's part
    beyond the outer points is off by the difference times its extension (a review's
    scratch run: 0.04 px where a residual of 5 % of a scaling moved the share from 0.66
    to 0.70; none where both are 0 or 1, as in every row of the benchmark).

    Moved back by cubic-spline interpolation, each pixel q taking the frame's value at
    q - field(q): an inverse to first order, which leaves -(field . grad) field to the
    patches. That is none for a shear; 0.02 px at the worst patch of the benchmark's 3
    px scaling, 0.05 px for its bulge; and it grows with the square of the amplitude (a
    review's scratch runs, 12 frames at 100 counts: on a 6 px scaling the worst patch
    came out 0.56 px refined, 0.54 px unrefined, 0.52 px through an exact inverse by
    fixed-point steps, which on a 3 px bulge was 0.003 px worse RMS; not adopted,
    untested on the benchmark). Splitting the counts bilinearly instead, as the final
    warp does to conserve them, blurs each pixel by its own fraction, differently in
    every frame, and left the sharp cells' patches further off than before (scratch
    runs, seed 3: the worst patch of the scaling 3.0x its limit instead of 2.8x; with
    the spline 2.6x).
    """
    from scipy import ndimage

    n_frames, height, width = stack.shape
    undeformed = np.empty(stack.shape, dtype=np.float32)  # one copy of the stack
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)

    def move_back(index):
        moves = displacement_at_pixels(field[index], grid, (height, width))
        undeformed[index] = ndimage.map_coordinates(
            np.asarray(stack[index], dtype=np.float64), [rows - moves[0], cols - moves[1]],
            order=3, mode="nearest")
        return index

    for _ in map_frames(move_back, n_frames):
        pass
    residual, sigma, weights, corners, _ = yield from _patch_moves(
        undeformed, rigid, side, starts, upsample_factor, progress)
    # What is left continues beyond the outer grid points as the sum of the two does.
    return field + _fitted_field(residual, sigma, weights, corners, side, grid,
                                 stack.shape[1:], added_to=field)
