"""Fewer refinement passes on smooth scenes: Anderson acceleration of the passes."""

from __future__ import annotations

import itertools

import numpy as np

from .subpixel import _Sums

__all__ = ["ACCELERATION_DEPTH", "ACCELERATION_LIMIT", "accelerate"]

#: Passes remembered by the acceleration of the passes (see accelerate) ...
ACCELERATION_DEPTH = 3
#: ... and the largest jump it takes, in units of the last pass's largest move.
ACCELERATION_LIMIT = 10.0


def accelerate(starts: list, residuals: list, shifts: np.ndarray, sums: _Sums) -> np.ndarray:
    """Jump ahead along a slowly converging sequence of passes (Anderson acceleration).

    On a smooth scene (a large grain with soft edges) each pass moves every frame only
    part of the way to the fixed point: the weights that keep the objective unbiased
    stay where the frame is while its lag is searched, which pulls the peak toward the
    frame's current place. The passes then shrink the distance left by near-constant
    ratios (0.2-0.8, one per mode of the stack's drift). From the last few passes'
    starts ``x`` and moves ``f`` (the fixed point is where ``f`` is zero), the
    combination of the passes whose moves cancel best by least squares predicts the
    fixed point; the next pass starts there, and its own check keeps it there or moves
    it back. The fixed point is not changed, only reached in fewer passes. A jump larger
    than :data:`ACCELERATION_LIMIT` times the last pass's largest move is not taken.
    """
    if len(residuals) < 2:
        return shifts
    last = residuals[-1].ravel()
    moves_change = np.column_stack([(b - a).ravel() for a, b in
                                     itertools.pairwise(residuals)])
    starts_change = np.column_stack([(b - a).ravel() for a, b in itertools.pairwise(starts)])
    weights, *_ = np.linalg.lstsq(moves_change, last, rcond=1e-8)
    target = (starts[-1].ravel() + last
              - (starts_change + moves_change) @ weights).reshape(shifts.shape)
    jump = target - shifts
    jump -= jump.mean(axis=0)  # a shared move changes nothing
    largest = float(np.max(np.abs(residuals[-1])))
    if not np.all(np.isfinite(jump)) or float(np.max(np.abs(jump))) > (
            ACCELERATION_LIMIT * largest):
        return shifts
    for index in np.flatnonzero(np.any(jump != 0, axis=1)):
        sums.add(index, shifts[index], -1.0)
        sums.add(index, shifts[index] + jump[index])
    return shifts + jump
