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
does not), and per frame the field at the grid points is the one whose weighted
means reproduce the patches' moves (:func:`._field.consistent_field`). The field is
kept only when the stack deforms beyond its noise (:func:`._field.deformation_test`:
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
from ._field import calibrated_sigma, consistent_field, deformation_test, steady_patches
from ._temporal import smooth_over_frames
from .registration import MAX_PASSES, FrameRegistration, iter_register
from .subpixel import TAPER_SMOOTHING_WIDTHS, edge_taper

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
    fitted to these weighted means (:func:`._field.consistent_field`), not to the
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
    moves, sigma, weights, corners, unusable = yield from _patch_moves(
        stack, rigid, side, (row_starts, col_starts), upsample_factor,
        lambda done: budget + (budget * done) // n_patches)
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
    steady = steady_patches(moves, sigma)  # judged on the predicted uncertainties
    sigma = calibrated_sigma(moves, sigma)
    if deformation_test(moves, sigma):
        # Smoothed over the frames only once the stack is known to deform (the test
        # judges the moves as measured), and only the patches whose course is steady.
        moves = smooth_over_frames(moves, sigma, steady)
        field = consistent_field(moves, sigma, weights, corners, side, grid, (height, width))
    return dataclasses.replace(rigid, displacement_px=field, displacement_grid_px=grid)
