"""The part of the frames a registration looks at: a rectangle or a mask."""

from __future__ import annotations

import numpy as np

__all__ = ["check_region", "parse_rectangle"]


def check_region(region, shape) -> np.ndarray | None:
    """A boolean (H, W) mask from None, a mask, or a rectangle (top, left, bottom, right)."""
    if region is None:
        return None
    height, width = shape
    if isinstance(region, str):
        region = parse_rectangle(region)
    array = np.asarray(region)
    if array.shape == (4,) and array.dtype.kind in "iuf":
        top, left, bottom, right = (int(round(float(v))) for v in array)
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(bottom, height), min(right, width)
        if bottom - top < 4 or right - left < 4:
            raise ValueError(f"region {tuple(array.tolist())} (top, left, bottom, right) "
                             f"leaves less than 4 x 4 px of the {height} x {width} frame")
        mask = np.zeros((height, width), bool)
        mask[top:bottom, left:right] = True
        return mask
    if array.shape != (height, width):
        raise ValueError(f"region must be a (top, left, bottom, right) rectangle or a mask "
                         f"of the frame's shape {(height, width)}; got shape {array.shape}")
    mask = array.astype(bool)
    if mask.sum() < 16:
        raise ValueError(f"region mask selects {int(mask.sum())} px; at least 16 are needed")
    return mask


def parse_rectangle(text: str) -> tuple[int, int, int, int]:
    """Parse ``'top:bottom, left:right'`` (pixels, end excluded) into (top, left, bottom, right)."""
    try:
        rows, cols = (part.strip() for part in text.split(","))
        top, bottom = (int(v) for v in rows.split(":"))
        left, right = (int(v) for v in cols.split(":"))
    except ValueError:
        raise ValueError(f"region must look like 'top:bottom, left:right' in pixels, "
                         f"not {text!r}") from None
    return top, left, bottom, right
