"""Bounds and choices of the analysis functions' arguments, declared once.

The functions below check their arguments against these; the steps' ``Parameter``
definitions (``steps/analysis.py``) take the same values, so the library, recipes, the
command line and the widgets accept and refuse the same values. No scipy here: the step
definitions import this module, and most commands never need scipy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KERNEL_BOUNDS", "DEFAULT_MIN_COUNTS", "MIN_COUNTS_OF_ALL", "THRESHOLDS",
           "MIN_OVERLAP_BOUNDS", "FRACTION_BOUNDS", "DILUTION_BOUNDS", "HOURS_BOUNDS"]

#: The ratio kernel: an odd box of kernel x kernel pixels whose counts are summed first.
KERNEL_BOUNDS: dict[str, Any] = dict(kind=int, unit="px", minimum=1, maximum=101, odd=True)
#: Default of ``evaluate(min_counts=...)``: raw counts (after the kernel sum) of every ion
#: mass an expression uses below which the pixel is NaN.
DEFAULT_MIN_COUNTS = 10.0
#: ``evaluate(min_counts_of=...)`` meaning "every ion mass the expression uses".
MIN_COUNTS_OF_ALL = "all"
#: The scikit-image threshold methods ``segment_rois`` offers.
THRESHOLDS = ("otsu", "li", "yen", "triangle")
#: ``classes_from_labels(min_overlap=...)``: the fraction of an ROI's pixels that the
#: most frequent class value must cover.
MIN_OVERLAP_BOUNDS: dict[str, Any] = dict(kind=float, above=0.0, maximum=1.0)
#: ``assimilation(natural=..., substrate=...)``: an isotope fraction, or atom-%.
FRACTION_BOUNDS: dict[str, Any] = dict(kind=float, minimum=0.0, maximum=100.0)
#: ``assimilation(dilution=...)``: the fraction of the label lost in sample preparation.
DILUTION_BOUNDS: dict[str, Any] = dict(kind=float, minimum=0.0, maximum=0.999)
#: ``assimilation(hours=...)``: the incubation time.
HOURS_BOUNDS: dict[str, Any] = dict(kind=float, unit="h", above=0.0, maximum=1e6)
