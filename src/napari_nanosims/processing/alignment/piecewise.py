"""Non-rigid drift: rigid registration of overlapping patches, a smooth displacement field.

The stack is first registered as a whole (the 'subpixel' method). Then overlapping
square patches (a side chosen from the counts, half a side apart) are registered the
same way, each frame's patch cut where the rigid translation put its content (whole
pixels, so nothing is resampled) and refined from the rigid translation's fraction.
What a patch moves beyond the rigid translation, with its uncertainty, becomes a
displacement field at the patch centres: smoothed over neighbouring patches, each
weighted by one over its variance, and kept only for frames where it is significant
(chi-square of the patches' moves against their uncertainties), so that a stack that
drifts rigidly keeps its rigid result exactly. Patches with too few counts to register
(flagged frames, or a patch mostly flagged) carry no weight; where no patch registers
the result falls back to the rigid one, with a warning.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Generator

import numpy as np

from ..._errors import AlignmentWarning
from ..._progress import run_to_completion
from .registration import MAX_PASSES, FrameRegistration, iter_register

__all__ = ["iter_register_piecewise", "patch_size_px", "PATCH_COUNTS", "MIN_PATCH_PX"]

#: Counts a patch should hold per frame (sets the patch side from the mean count).
PATCH_COUNTS = 4000.0
#: Smallest patch side, pixels.
MIN_PATCH_PX = 48
#: A frame's field is kept when its chi-square exceeds the degrees of freedom by this
#: many standard deviations (sqrt(2 dof)); overlapping patches are correlated.
SIGNIFICANCE_SIGMAS = 5.0
OVERLAP_FACTOR = 1.5
#: Smoothing of the patch moves over their neighbours (Gaussian sigma, grid steps of half
#: a patch): overlapping patches already share half their pixels.
SMOOTHING_STEPS = 0.75


def patch_size_px(mean_counts: float, shape) -> int:
    """Side of the patches, pixels: enough for :data:`PATCH_COUNTS` counts per frame, at
    least :data:`MIN_PATCH_PX`, at most half the frame; a multiple of 8."""
    wanted = np.sqrt(PATCH_COUNTS / max(float(mean_counts), 1e-9))
    side = int(np.ceil(max(wanted, MIN_PATCH_PX) / 8) * 8)
    return int(min(side, min(shape) // 2))


def _starts(length: int, side: int) -> np.ndarray:
    """Patch starts half a side apart, the last one flush with the end."""
    if side >= length:
        return np.array([0])
    starts = np.arange(0, length - side + 1, max(side // 2, 1))
    if starts[-1] != length - side:
        starts = np.append(starts, length - side)
    return starts


def _cut(stack: np.ndarray, start, side: int, whole: np.ndarray):
    """Each frame's patch, cut where the rigid move put its content, and the offsets."""
    n_frames, height, width = stack.shape
    top = np.clip(start[0] - whole[:, 0], 0, height - side)
    left = np.clip(start[1] - whole[:, 1], 0, width - side)
    patch = np.stack([stack[k, top[k]:top[k] + side, left[k]:left[k] + side]
                      for k in range(n_frames)])
    # A patch cut ``start - top`` lower holds content that needs that much more move.
    return patch, np.column_stack([start[0] - top, start[1] - left]).astype(np.float64)


def _smooth(moves: np.ndarray, weights: np.ndarray, prior: float) -> np.ndarray:
    """Moves (rows, cols, 2) as a smooth field: a weighted local plane through each patch
    and its neighbours (weights: ``weights`` (rows, cols, 2) times a Gaussian of
    :data:`SMOOTHING_STEPS` grid steps), which keeps a linear field (shear, scaling)
    unbiased up to the frame's edges, shrunk toward 0 by ``prior``."""
    rows, cols = moves.shape[:2]
    yy, xx = np.indices((rows, cols), dtype=np.float64)
    out = np.zeros_like(moves)
    for i in range(rows):
        for j in range(cols):
            near = np.exp(-((yy - i) ** 2 + (xx - j) ** 2) / (2 * SMOOTHING_STEPS ** 2))
            design = np.stack([np.ones(rows * cols), (yy - i).ravel(), (xx - j).ravel()], 1)
            for axis in (0, 1):
                weight = (near * weights[..., axis]).ravel()
                normal = design.T @ (design * weight[:, None])
                normal[0, 0] += prior
                if np.linalg.matrix_rank(normal) < 3:  # too few neighbours: a weighted mean
                    out[i, j, axis] = float(np.sum(weight * moves[..., axis].ravel())
                                            / (weight.sum() + prior))
                    continue
                out[i, j, axis] = np.linalg.solve(
                    normal, design.T @ (weight * moves[..., axis].ravel()))[0]
    return out


def _significant(moves: np.ndarray, weights: np.ndarray) -> bool:
    """Whether a frame's patch moves (rows, cols, 2) differ from 0 beyond their noise:
    chi-square above its degrees of freedom by :data:`SIGNIFICANCE_SIGMAS` sigmas."""
    dof = 2 * np.count_nonzero(weights[..., 0])
    chi2 = float(np.sum(moves ** 2 * weights))
    # Overlapping patches share pixels, so their moves are not independent: the
    # chi-square spreads wider than its degrees of freedom say (measured: up to 2.2 dof
    # on rigid mineral stacks); OVERLAP_FACTOR allows for it.
    return bool(dof) and chi2 > OVERLAP_FACTOR * (dof + SIGNIFICANCE_SIGMAS * np.sqrt(2 * dof))


def iter_register_piecewise(data, upsample_factor: int, region=None, rigid=None,
                            patch_px=None) -> Generator[int, None, FrameRegistration]:
    """Register a (frames, H, W) stack rigidly, then its patches; see the module.

    Returns the rigid :class:`FrameRegistration` with ``displacement_px`` (frames, 2,
    rows, cols: the move beyond each frame's translation at the patch centres, pixels)
    and ``displacement_grid_px`` (the centres' row and column coordinates).
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
    translations = rigid.translations
    whole = np.round(translations).astype(np.int64)
    moves = np.zeros((n_frames, row_starts.size, col_starts.size, 2))
    weights = np.zeros_like(moves)
    unusable = 0
    for i, top in enumerate(row_starts):
        for j, left in enumerate(col_starts):
            patch, offsets = _cut(stack, (top, left), side, whole)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a patch that does not register is no error
                result = run_to_completion(iter_register(patch, upsample_factor, None, None,
                                                         initial=translations - offsets))
            done = i * col_starts.size + j + 1
            yield budget + (budget * done) // (row_starts.size * col_starts.size)
            if result.flagged.mean() > 0.5:
                unusable += 1
                continue
            measured = result.measured + offsets - translations
            measured -= np.median(measured[~result.flagged], axis=0)
            good = ~result.flagged & np.all(np.isfinite(result.uncertainty_px), axis=1)
            moves[good, i, j] = measured[good]
            weights[good, i, j] = 1.0 / np.maximum(result.uncertainty_px[good], 1e-3) ** 2
    n_patches = row_starts.size * col_starts.size
    field = np.zeros((n_frames, 2, row_starts.size, col_starts.size))
    if unusable == n_patches:
        warnings.warn(f"piecewise alignment: none of the {n_patches} patches of {side} x "
                      f"{side} px holds enough counts to register; the rigid (subpixel) "
                      "alignment is used", AlignmentWarning, stacklevel=3)
    else:
        if unusable:
            warnings.warn(f"piecewise alignment: {unusable} of {n_patches} patches of {side} "
                          f"x {side} px have too few counts to register; the field there "
                          "comes from their neighbours (rigid where none registers)",
                          AlignmentWarning, stacklevel=3)
        for k in range(n_frames):
            if _significant(moves[k], weights[k]):
                # The prior: a move of 0.5 px beyond the rigid one is as likely as not.
                field[k] = np.moveaxis(_smooth(moves[k], weights[k], 4.0), -1, 0)
    return dataclasses.replace(rigid, displacement_px=field, displacement_grid_px=grid)
