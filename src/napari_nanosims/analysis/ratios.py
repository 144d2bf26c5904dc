"""Ratio, fraction, delta and any other expression of mass images, with Poisson errors.

The per-pixel significance of enrichment is in :mod:`.significance`."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..model import Acquisition, HistoryRecord
from .accumulate import Accumulation, _box_sum, _check_kernel, accumulate
from .bounds import DEFAULT_MIN_COUNTS, MIN_COUNTS_OF_ALL
from .expression import Node, evaluate_node, parse

__all__ = ["DerivedImage", "evaluate", "STANDARDS", "DEFAULT_MIN_COUNTS", "MIN_COUNTS_OF_ALL",
           "POISSON_MIN_COUNTS"]

# Common reference ratios, minor over major isotope (editable in the GUI). Sources:
# AIR 15N/14N: Junk & Svec (1958) Geochim. Cosmochim. Acta 14, 234.
# VPDB 13C/12C: Craig (1957) Geochim. Cosmochim. Acta 12, 133 (the value most delta
#   conversions use); Zhang & Li (1990) Chin. Sci. Bull. 35, 290 measured 0.011180.
# VCDT 34S/32S: Ding et al. (2001) Geochim. Cosmochim. Acta 65, 2433.
# VSMOW 18O/16O: Baertschi (1976) Earth Planet. Sci. Lett. 31, 341.
# VSMOW 2H/1H: Hagemann, Nief & Roth (1970) Tellus 22, 712.
STANDARDS = {"AIR 15N/14N": 0.0036765, "VPDB 13C/12C": 0.0112372,
             "VPDB 13C/12C (Zhang & Li 1990)": 0.011180, "VCDT 34S/32S": 0.0441626,
             "VSMOW 18O/16O": 0.0020052, "VSMOW 2H/1H": 0.00015576}

#: Raw counts below which sqrt(n) is no honest one-sigma error (it is 0 at n = 0): such
#: counts get Gehrels' (1986) one-sigma upper-limit error sqrt(n + 0.75) + 1 instead.
POISSON_MIN_COUNTS = 10.0


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
    node : Node or None
        The parsed expression (exporters evaluate it, never its text).
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
    node: Node | None = None


def _as_accumulation(source) -> Accumulation:
    if isinstance(source, Accumulation):
        return source
    if isinstance(source, Acquisition):
        return accumulate(source)
    raise ValueError(f"source must be an Accumulation or an Acquisition, not "
                     f"{type(source).__name__}")


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


def _check_min_counts(min_counts) -> float:
    """The raw-count threshold as a float (None: no threshold, as 0)."""
    if min_counts is None:  # recipes written when None was the default
        return 0.0
    if isinstance(min_counts, (bool, np.bool_)) or not isinstance(
            min_counts, (int, float, np.integer, np.floating)) or not np.isfinite(min_counts) \
            or min_counts < 0:
        raise ValueError(f"min_counts must be a number of raw counts >= 0 (0 keeps every "
                         f"pixel), not {min_counts!r}")
    return float(min_counts)


def _check_min_counts_of(min_counts_of, labels, ions) -> str | None:
    """The file's label of the mass ``min_counts`` applies to (None: every mass used)."""
    if not isinstance(min_counts_of, str):
        raise ValueError(f"min_counts_of must be a mass label or {MIN_COUNTS_OF_ALL!r}, not "
                         f"{min_counts_of!r}")
    if min_counts_of == MIN_COUNTS_OF_ALL:
        return None
    squeezed = "".join(min_counts_of.split())
    found = next((label for label in labels if "".join(label.split()) == squeezed), None)
    if found is None or found not in ions:
        raise ValueError(f"min_counts_of must be {MIN_COUNTS_OF_ALL!r} or an ion mass of the "
                         f"file ({', '.join(sorted(ions))}), not {min_counts_of!r}")
    return found


def _ion_labels(total: Accumulation) -> set[str]:
    """Labels of the channels that count ions (every channel but the secondary electrons)."""
    return {channel.label for channel in total.channels
            if channel.kind != "SE" and channel.label != "SE"}


def _gehrels_variance(raw_sum: np.ndarray, variance_sum: np.ndarray, raw_image: np.ndarray,
                      variance_image: np.ndarray) -> np.ndarray:
    """Variance of a (corrected) count from Gehrels' one-sigma upper-limit error.

    Gehrels (1986, ApJ 303, 336): the one-sigma upper limit of a Poisson mean given n
    counts is close to ``n + sqrt(n + 0.75) + 1``; its distance from n,
    ``sqrt(n + 0.75) + 1``, is used as a symmetric error. It is larger than ``sqrt(n)``
    (conservative) and never 0. It is in raw counts; corrections scale it by their
    variance per raw count, ``V / n`` (1 for raw counts), taken over the whole image of
    the mass where n = 0.
    """
    finite = np.isfinite(raw_image) & np.isfinite(variance_image)
    raw_total = float(raw_image[finite].sum())
    typical = float(variance_image[finite].sum()) / raw_total if raw_total > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        per_count = np.where(raw_sum > 0, variance_sum / raw_sum, typical)
    return per_count * (np.sqrt(raw_sum + 0.75) + 1.0) ** 2


def evaluate(source, expression: str, *, kernel: int = 1,
             min_counts: float | None = DEFAULT_MIN_COUNTS,
             min_counts_of: str = MIN_COUNTS_OF_ALL) -> DerivedImage:
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
        The box sums' variance is exact also after a sub-pixel alignment, whose
        shifted pixels share counts with their neighbours
        (:meth:`Accumulation.kernel_variance`).
    min_counts : float or None
        Raw counts (uncorrected, after the kernel sum). A pixel where any ion mass the
        expression uses has fewer is NaN in value and sigma: a Poisson error is not
        trustworthy there (at 0 counts it is 0). Default 10. The secondary-electron
        image is not an ion count and is never tested. ``0`` (or None) keeps every
        pixel. Kept counts under 10 (:data:`POISSON_MIN_COUNTS`) enter the error with
        Gehrels' (1986) one-sigma upper-limit error ``sqrt(n + 0.75) + 1`` instead of
        ``sqrt(n)`` (scaled like the variance by corrections), so no error is ever 0
        where counts are 0.
    min_counts_of : str
        The ion mass whose raw counts (after the kernel sum) ``min_counts`` applies to,
        as LANS masks on one chosen mass: any ion mass label of the file, also one the
        expression does not use (``'12C14N'`` for ``13C/12C``). ``'all'`` (default):
        every ion mass the expression uses.

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
    min_counts = _check_min_counts(min_counts)
    labels = total.labels
    node = parse(expression, labels)
    used = node.labels()
    ions = _ion_labels(total)
    mask_label = _check_min_counts_of(min_counts_of, labels, ions)
    images, variances, raw = {}, {}, {}
    # Exact also after sub-pixel alignment, where neighbouring pixels share counts and
    # the box sum of the pixel variances would understate the kernel's variance.
    kernel_variance = dict(zip(used, total.kernel_variance(
        kernel, [labels.index(label) for label in used]), strict=True))
    for label in used:
        index = labels.index(label)
        images[label] = _box_sum(total.counts[index], kernel)
        variances[label] = kernel_variance[label]
        if label in ions:
            raw[label] = _box_sum(total.raw_counts[index], kernel)
            few = raw[label] < POISSON_MIN_COUNTS
            if few.any():
                variances[label] = np.where(few, _gehrels_variance(
                    raw[label], variances[label], total.raw_counts[index],
                    total.variance[index]), variances[label])
    result = evaluate_node(node, images)
    value = np.broadcast_to(result.value, total.coverage.shape).astype(np.float64)
    variance = np.zeros_like(value)
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 where a value is NaN anyway
        for label, derivative in result.gradient.items():
            variance = variance + (derivative ** 2) * variances[label]
    sigma = np.sqrt(variance)
    invalid = ~np.isfinite(value)
    if min_counts_of == MIN_COUNTS_OF_ALL:
        for counts in raw.values():
            invalid |= counts < min_counts
    else:
        index = labels.index(mask_label)
        invalid |= _box_sum(total.raw_counts[index], kernel) < min_counts
    value = np.where(invalid, np.nan, value)
    sigma = np.where(invalid | ~np.isfinite(sigma), np.nan, sigma)
    parts = _parts(node)
    numerator = denominator = None
    if parts is not None:
        numerator = images[parts[0].value]
        denominator = evaluate_node(parts[1], images).value * np.ones_like(value)
    record = HistoryRecord("evaluate", {"expression": node.text(), "kernel": kernel,
                                        "min_counts": min_counts,
                                        "min_counts_of": min_counts_of})
    return DerivedImage(value=value, sigma=sigma, expression=node.text(), unit=_unit(node),
                        channels_used=tuple(used), pixel_size_um=total.pixel_size_um,
                        history=total.history + (record,), numerator=numerator,
                        denominator=denominator, node=node)


