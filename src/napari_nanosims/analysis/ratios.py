"""Ratio, fraction, delta and any other expression of mass images, with Poisson errors."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ..io.acquisition import Acquisition, HistoryRecord
from .accumulate import Accumulation, accumulate
from .expression import Node, evaluate_node, parse

__all__ = ["DerivedImage", "evaluate", "significance", "STANDARDS"]

# Common reference ratios (editable in the GUI); values as compiled in
# ../shared/docs/analysis.md section 4.3.
STANDARDS = {"AIR 15N/14N": 0.0036765, "VPDB 13C/12C": 0.011180,
             "VSMOW 18O/16O": 0.0020052, "VSMOW 2H/1H": 0.00015576}


@dataclasses.dataclass(frozen=True)
class DerivedImage:
    """An image computed from mass images, with its 1-sigma error per pixel.

    Attributes
    ----------
    value, sigma : numpy.ndarray
        (height, width) float64; NaN where the value is undefined (a denominator of 0,
        too few counts, outside the field). Values are unscaled.
    expression : str
        The normalised expression.
    unit : str
        ``''``, ``'per mil'`` (delta) or ``'%'`` (an expression multiplied by 100).
    channels_used : tuple of str
        The mass labels the expression uses.
    pixel_size_um : float
        Pixel size, micrometres.
    history : tuple of HistoryRecord
        The steps behind the sums, then this evaluation.
    numerator, denominator : numpy.ndarray or None
        For ratios and fractions (``A/B``, ``A/(A+B)``), the summed numerator and
        denominator images (the intensity of an OpenMIMS HSI display).
    """

    value: np.ndarray
    sigma: np.ndarray
    expression: str
    unit: str
    channels_used: tuple[str, ...]
    pixel_size_um: float
    history: tuple[HistoryRecord, ...]
    numerator: np.ndarray | None = None
    denominator: np.ndarray | None = None


def _as_accumulation(source) -> Accumulation:
    if isinstance(source, Accumulation):
        return source
    if isinstance(source, Acquisition):
        return accumulate(source)
    raise ValueError(f"source must be an Accumulation or an Acquisition, not "
                     f"{type(source).__name__}")


def _check_kernel(kernel) -> int:
    if isinstance(kernel, bool) or not isinstance(kernel, (int, np.integer)) or kernel < 1 \
            or kernel % 2 == 0 or kernel > 101:
        raise ValueError(f"kernel must be an odd whole number of pixels from 1 to 101, "
                         f"not {kernel!r}")
    return int(kernel)


def _box_sum(image: np.ndarray, kernel: int) -> np.ndarray:
    """Sum over a kernel x kernel box (zeros outside the field; NaN stays NaN)."""
    if kernel == 1:
        return image
    weights = np.ones((kernel, kernel))
    missing = np.isnan(image)
    summed = ndimage.convolve(np.where(missing, 0.0, image), weights, mode="constant")
    touched = ndimage.convolve(missing.astype(np.float64), weights, mode="constant") > 0
    return np.where(touched, np.nan, summed)


def _unit(node: Node) -> str:
    """'per mil' for delta(), '%' for a product with 100 (100*A/B, A/B*100), else ''."""
    if node.kind == "call" and node.value == "delta":
        return "per mil"
    if node.kind == "binary" and node.value == "*" and any(
            child.kind == "number" and child.value == 100 for child in node.children):
        return "%"
    if node.kind == "binary" and node.value in "*/" and _unit(node.children[0]) == "%":
        return "%"
    return ""


def _parts(node: Node):
    """(numerator label, denominator node) for ``A/B`` and ``A/(A+B)``-shaped expressions."""
    if node.kind == "binary" and node.value == "/" and node.children[0].kind == "label":
        return node.children[0], node.children[1]
    return None


def evaluate(source, expression: str, *, kernel: int = 1, min_counts=None) -> DerivedImage:
    """Evaluate ``expression`` over a file's mass images with its Poisson error.

    Parameters
    ----------
    source : Accumulation or Acquisition
        Summed images (an Acquisition is summed over all its frames first).
    expression : str
        Over the mass labels (spaces optional, longest match first), numbers, ``+ - * /``,
        unary minus, parentheses, ``log``, ``log10``, ``sqrt``, ``exp`` and
        ``delta(expr, standard)`` (per mil). Examples: ``'12C15N/12C14N'``,
        ``'13C/(12C+13C)'``, ``'100*12C15N/(12C14N+12C15N)'``, ``'12C13C/(2*12C2)'``.
    kernel : int
        Odd box size, pixels: counts and variances are summed over ``kernel x kernel``
        before the expression (count-conserving smoothing that keeps a valid error).
    min_counts : float or None
        Pixels where a used channel has fewer (kernel-summed) counts are NaN.

    Returns
    -------
    DerivedImage
        ``sigma**2 = sum_i (df/dm_i)**2 V_i`` (first-order propagation): exactly
        ``R sqrt(V_A/A**2 + V_B/B**2)`` for a ratio. A denominator of 0 gives NaN, never 0.

    Raises
    ------
    ValueError
        For an unknown label or a syntax error (the message gives the position and the
        labels), a bad kernel or min_counts.
    """
    total = _as_accumulation(source)
    kernel = _check_kernel(kernel)
    if min_counts is not None and (isinstance(min_counts, bool) or not np.isfinite(
            float(min_counts)) or float(min_counts) < 0):
        raise ValueError(f"min_counts must be None or a number >= 0, not {min_counts!r}")
    labels = total.labels
    node = parse(expression, labels)
    used = node.labels()
    images, variances = {}, {}
    for label in used:
        index = labels.index(label)
        images[label] = _box_sum(total.counts[index], kernel)
        variances[label] = _box_sum(total.variance[index], kernel)
    result = evaluate_node(node, images)
    value = np.broadcast_to(result.value, total.coverage.shape).astype(np.float64)
    variance = np.zeros_like(value)
    for label, derivative in result.gradient.items():
        variance = variance + (derivative ** 2) * variances[label]
    sigma = np.sqrt(variance)
    invalid = ~np.isfinite(value)
    if min_counts is not None:
        for label in used:
            invalid |= images[label] < float(min_counts)
    value = np.where(invalid, np.nan, value)
    sigma = np.where(invalid | ~np.isfinite(sigma), np.nan, sigma)
    parts = _parts(node)
    numerator = denominator = None
    if parts is not None:
        numerator = images[parts[0].value]
        denominator = evaluate_node(parts[1], images).value * np.ones_like(value)
    record = HistoryRecord("evaluate", {"expression": node.text(), "kernel": kernel,
                                        "min_counts": min_counts})
    return DerivedImage(value=value, sigma=sigma, expression=node.text(), unit=_unit(node),
                        channels_used=tuple(used), pixel_size_um=total.pixel_size_um,
                        history=total.history + (record,), numerator=numerator,
                        denominator=denominator)


def significance(source, numerator: str, denominator: str, natural_ratio: float,
                 kernel: int = 1) -> DerivedImage:
    """Per-pixel z-score of enrichment of ``numerator`` against a natural ratio.

    A binomial test of A against A + B: with ``p0 = r / (1 + r)`` and ``n = A + B``,
    ``z = (A - n p0) / sqrt(n p0 (1 - p0))``. Positive z is enrichment; |z| > 3 is rarely
    counting noise. ``sigma`` is 1 (z has unit variance), NaN where n = 0.
    """
    if isinstance(natural_ratio, bool) or not np.isfinite(float(natural_ratio)) or \
            float(natural_ratio) <= 0:
        raise ValueError(f"natural_ratio must be a number above 0, not {natural_ratio!r}")
    total = _as_accumulation(source)
    kernel = _check_kernel(kernel)
    labels = total.labels
    a_label = parse(numerator, labels)
    b_label = parse(denominator, labels)
    if a_label.kind != "label" or b_label.kind != "label":
        raise ValueError("significance() compares two mass labels, e.g. '12C15N' and '12C14N'")
    a = _box_sum(total.counts[labels.index(a_label.value)], kernel)
    b = _box_sum(total.counts[labels.index(b_label.value)], kernel)
    p0 = float(natural_ratio) / (1 + float(natural_ratio))
    n = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(n > 0, (a - n * p0) / np.sqrt(n * p0 * (1 - p0)), np.nan)
    record = HistoryRecord("significance", {"numerator": a_label.value,
                                            "denominator": b_label.value,
                                            "natural_ratio": float(natural_ratio),
                                            "kernel": kernel})
    return DerivedImage(value=z, sigma=np.where(np.isfinite(z), 1.0, np.nan),
                        expression=f"z({a_label.value}/{b_label.value} vs {natural_ratio:g})",
                        unit="", channels_used=(a_label.value, b_label.value),
                        pixel_size_um=total.pixel_size_um, history=total.history + (record,),
                        numerator=a, denominator=b)
