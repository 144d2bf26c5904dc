"""Fewer refinement passes on smooth scenes: Anderson acceleration of the passes."""

from __future__ import annotations

import itertools

import numpy as np

from .sums import _Sums

__all__ = ["ACCELERATION_DEPTH", "ACCELERATION_LIMIT", "CONTRACTION_MAX", "accelerate",
           "settled"]

#: Passes remembered by the acceleration of the passes (see accelerate) ...
ACCELERATION_DEPTH = 3
#: ... and the largest jump it takes, in units of the last pass's largest move.
ACCELERATION_LIMIT = 10.0
#: A pass whose largest move is at most this fraction of the one before (no jump in
#: between) shows the passes contracting fast enough to tell how far is left.
CONTRACTION_MAX = 0.25


def settled(relative: np.ndarray, tolerance, previous_largest: float | None) -> bool:
    """Whether the frames are at the fixed point after a pass that moved them by
    ``relative`` (frames, 2), px, within ``tolerance`` (px; a scalar or per frame).

    Yes when no frame moved by more than the tolerance; or when the pass moved them
    by at most a quarter of what the pass before did (``previous_largest``; None if
    there was no pass before, an accelerated jump came in between, or the frames are
    not within reach of measured diagnostics, so that stopping would cost a
    measurement of its own): the passes
    then shrink the distance left by that ratio ``r`` at least, so that what is left
    after this pass is at most ``r / (1 - r)`` times its move; if that is within the
    tolerance (and the move within four times it), one more pass would only confirm.
    Cells settle this way a pass earlier: 0.12 then 0.005 px, about 0.0002 px left.
    """
    moves = np.abs(relative)
    if bool(np.all(moves <= tolerance)):
        return True
    largest = float(np.max(moves))
    if previous_largest is None or not previous_largest > 0:
        return False
    ratio = largest / previous_largest
    return bool(ratio <= CONTRACTION_MAX and np.all(moves <= 4 * np.asarray(tolerance))
                and np.all(moves * ratio / (1 - ratio) <= tolerance))


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
    return sums.move_frames(shifts, shifts + jump)
