"""Per-pixel significance of enrichment, with false-discovery-rate control."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import stats

from ..model import HistoryRecord
from .accumulate import _box_sum, _check_kernel
from .expression import parse
from .ratios import DerivedImage, _as_accumulation, _ion_labels

__all__ = ["SignificanceImage", "significance", "benjamini_hochberg"]


ALTERNATIVES = ("greater", "less", "two-sided")


P_VALUE_METHODS = ("randomized", "mid-p", "exact")


@dataclasses.dataclass(frozen=True)
class SignificanceImage(DerivedImage):
    """Per-pixel test of enrichment: p-values, their normal equivalent and FDR control.

    ``value`` is the equivalent z (positive for enrichment) and ``sigma`` is 1 where z is
    finite (z is on the scale of a standard normal). ``numerator`` and ``denominator``
    are the raw (kernel-summed) counts of the two masses tested.

    Attributes
    ----------
    p_value : numpy.ndarray
        (height, width) float64 p-value of each pixel; NaN where nothing was counted
        (``n = 0``) or outside the field.
    q_value : numpy.ndarray or None
        (height, width) Benjamini-Hochberg q-value (the smallest false discovery rate at
        which the pixel is a discovery); None when ``fdr`` is None.
    discoveries : numpy.ndarray or None
        (height, width) bool, ``q_value <= fdr``; None when ``fdr`` is None.
    fdr : float or None
        The false discovery rate controlled.
    alternative, method : str
        The tested direction and the p-value (see :func:`significance`).
    null_ratio : float
        Minor over major ratio of the null hypothesis.
    null_ratio_sigma : float
        Its Poisson error when measured on control pixels (0 for a given number).
    null_source : str
        ``'given'`` or which control it came from.
    n_tested : int
        Pixels tested (with at least one count): the number of tests of the FDR.
    """

    p_value: np.ndarray | None = None
    q_value: np.ndarray | None = None
    discoveries: np.ndarray | None = None
    fdr: float | None = None
    alternative: str = "greater"
    method: str = "randomized"
    null_ratio: float = float("nan")
    null_ratio_sigma: float = 0.0
    null_source: str = "given"
    n_tested: int = 0


def _check_choice(value, choices, name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                         f"not {value!r}")
    return value


def _check_positive_number(value, name: str, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not np.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a number above 0 ({what}), not {value!r}")
    return float(value)


def _check_fdr(fdr) -> float | None:
    if fdr is None:
        return None
    if isinstance(fdr, (bool, np.bool_)) or not isinstance(
            fdr, (int, float, np.integer, np.floating)) or not 0 < fdr < 1:
        raise ValueError(f"fdr must be None or a false discovery rate between 0 and 1 "
                         f"(e.g. 0.05), not {fdr!r}")
    return float(fdr)


def _check_seed(seed):
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
            or seed < 0:
        raise ValueError(f"seed must be None, a whole number >= 0 or a "
                         f"numpy.random.Generator, not {seed!r}")
    return int(seed)


def _control_mask(shape, control, labels, control_labels) -> tuple[np.ndarray, str]:
    """The boolean mask of the control pixels and how it was given."""
    if control is not None:
        mask = np.asarray(control)
        if mask.dtype != bool:
            raise ValueError(f"control must be a boolean mask (True = unlabelled control "
                             f"pixel), not an array of {mask.dtype}")
        if mask.shape != tuple(shape):
            raise ValueError(f"control must have the image's shape {tuple(shape)}; got "
                             f"{mask.shape}")
        return mask, f"control mask ({int(mask.sum())} px)"
    if labels is None or control_labels is None:
        raise ValueError("labels (the ROI label image) and control_labels (the unlabelled "
                         "ROIs) go together: give both")
    label_image = np.asarray(labels)
    if label_image.shape != tuple(shape):
        raise ValueError(f"labels must have the image's shape {tuple(shape)}; got "
                         f"{label_image.shape}")
    if label_image.dtype.kind not in "iu":
        raise ValueError(f"labels must be whole ROI numbers (0 = background), not an array "
                         f"of {label_image.dtype}")
    chosen = np.atleast_1d(np.asarray(control_labels, dtype=object)).tolist()
    if not chosen or any(isinstance(label, (bool, np.bool_)) or not isinstance(
            label, (int, np.integer)) or label <= 0 for label in chosen):
        raise ValueError(f"control_labels must be ROI numbers above 0, not "
                         f"{control_labels!r}")
    present = set(np.unique(label_image).tolist())
    missing = [int(label) for label in chosen if int(label) not in present]
    if missing:
        raise ValueError(f"control_labels {missing} are not in labels")
    mask = np.isin(label_image, [int(label) for label in chosen])
    return mask, (f"control ROIs {', '.join(str(int(label)) for label in chosen)} "
                  f"({int(mask.sum())} px)")


def _whole_counts(raw: np.ndarray, name: str) -> np.ndarray:
    """Raw counts as whole numbers (a binomial test needs them); NaN stays NaN."""
    finite = np.isfinite(raw)
    rounded = np.where(finite, np.round(raw), np.nan)
    if np.any(np.abs(raw[finite] - rounded[finite]) > 1e-6):
        warnings.warn(f"{name}: the raw counts are not whole numbers (sub-pixel alignment "
                      "interpolates them); they are rounded, and the test assumes Poisson "
                      "counts they no longer are", UserWarning, stacklevel=3)
    return rounded


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) q-values of the finite ``p_values`` (NaN stays NaN).

    ``q_(i) = min_{j >= i} m p_(j) / j`` over the sorted p-values, capped at 1: a test
    is a discovery at false discovery rate ``alpha`` exactly when ``q <= alpha``.
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    q_values = np.full(p_values.shape, np.nan)
    finite = np.isfinite(p_values)
    tested = p_values[finite]
    m = tested.size
    if m:
        order = np.argsort(tested, kind="stable")
        scaled = tested[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(scaled[::-1])[::-1]
        sorted_back = np.empty(m)
        sorted_back[order] = np.minimum(ranked, 1.0)
        q_values[finite] = sorted_back
    return q_values


def _binomial_p_values(k, n, p0, alternative, method, rng):
    """p-values of k minor counts of n under Binomial(n, p0), and the side of each.

    The tie at the observed k gets weight u: 1 (exact: P(X >= k)), 1/2 (mid-p) or
    uniform random (randomized: exactly uniform under the null).
    """
    if method == "exact":  # the tails themselves: P(X >= k) and P(X <= k)
        greater, less = stats.binom.sf(k - 1, n, p0), stats.binom.cdf(k, n, p0)
    else:
        above = stats.binom.sf(k, n, p0)          # P(X > k)
        at = stats.binom.pmf(k, n, p0)            # P(X = k)
        below = stats.binom.cdf(k - 1, n, p0)     # P(X < k)
        tie_up = 0.5 if method == "mid-p" else rng.random(k.shape)
        tie_down = 1.0 - tie_up  # p_greater + p_less = 1 for both
        greater = np.minimum(above + tie_up * at, 1.0)
        less = np.minimum(below + tie_down * at, 1.0)
    if alternative == "greater":
        return greater, np.ones_like(greater)
    if alternative == "less":
        return less, -np.ones_like(less)
    return np.minimum(2 * np.minimum(greater, less), 1.0), np.where(greater <= less, 1.0, -1.0)


def significance(source, numerator: str, denominator: str, natural_ratio=None,
                 kernel: int = 1, *, control=None, labels=None, control_labels=None,
                 alternative: str = "greater", method: str = "randomized", seed=0,
                 fdr: float | None = 0.05) -> SignificanceImage:
    """Per-pixel test of enrichment of ``numerator`` against a null ratio, with FDR control.

    Each pixel's raw (uncorrected) counts, summed over ``kernel x kernel``, are tested:
    ``k`` counts of ``numerator`` among ``n = k + m`` counts of both masses follow
    Binomial(n, p0) without enrichment, ``p0 = r0 / (1 + r0)``. The exact binomial
    tail (``scipy.stats.binom``) gives the p-value; no normal approximation, which
    flags 3 to 10 times too many pixels at 0.5-2 counts of the minor isotope.

    Parameters
    ----------
    source : Accumulation or Acquisition
        Summed images (an Acquisition is summed over all its frames first). Their
        ``raw_counts`` are tested: corrected counts are not Poisson.
    numerator, denominator : str
        Mass labels of the minor and the major isotope, e.g. ``'12C15N'``, ``'12C14N'``.
    natural_ratio : float, optional
        The null ratio r0 (minor/major), e.g. a standard from :data:`STANDARDS`.
    kernel : int
        Odd box, pixels: raw counts summed over ``kernel x kernel`` first. Neighbouring
        pixels then share counts: the tests are positively correlated.
    control : numpy.ndarray of bool, optional
        (height, width) mask of unlabelled control pixels: r0 is the ratio of the summed
        raw counts over them, which cancels instrumental mass fractionation.
    labels : numpy.ndarray of int, optional
        (height, width) ROI label image (0 = background), with ``control_labels``.
    control_labels : int or sequence of int, optional
        ROIs of ``labels`` that are unlabelled controls: r0 from their summed raw counts.
        Exactly one of ``natural_ratio``, ``control`` or ``labels`` + ``control_labels``.
    alternative : {'greater', 'less', 'two-sided'}
        'greater' (default) tests enrichment, ``p = P(X >= k)``; 'less' tests depletion,
        ``P(X <= k)``; 'two-sided' doubles the smaller tail (capped at 1).
    method : {'randomized', 'mid-p', 'exact'}
        How the probability of the observed count itself is shared, ``p = P(X > k) +
        u P(X = k)``: 'exact', u = 1, ``binom.sf(k - 1, n, p0)`` (conservative: at 0.5-10
        minor counts per pixel it flags 0.3-0.7x the nominal rate, the counts being
        whole numbers); 'mid-p', u = 1/2 (0.5-1.2x); 'randomized' (default), u uniform
        on [0, 1): exactly uniform p-values without enrichment, so the nominal rate at
        every count. It only moves p within the probability of the observed count,
        which is small wherever the evidence is strong.
    seed : int, numpy.random.Generator or None
        Random numbers of the randomized method (default 0: the same data give the
        same map). None draws fresh ones.
    fdr : float or None
        Benjamini-Hochberg control of the false discovery rate over the tested pixels
        (default 0.05): fills ``q_value`` and ``discoveries``. None skips it.

    Returns
    -------
    SignificanceImage
        A :class:`DerivedImage` whose ``value`` is the equivalent z,
        ``norm.isf(p)`` for 'greater', ``-norm.isf(p)`` for 'less' and
        ``±norm.isf(p / 2)`` (the sign of the tail) for 'two-sided'; positive z is
        enrichment. Pixels with n = 0 are NaN. With ``method='exact'``, p = 1 gives
        z = -inf ('greater'); p below 1e-308 gives z = 37.5.

    Raises
    ------
    ValueError
        For a label that is not a single mass, no null ratio or more than one, a null
        ratio that is not a number above 0, a control without counts, a bad kernel,
        alternative, method, seed or fdr.
    """
    kernel = _check_kernel(kernel)
    alternative = _check_choice(alternative, ALTERNATIVES, "alternative")
    method = _check_choice(method, P_VALUE_METHODS, "method")
    seed = _check_seed(seed)
    fdr = _check_fdr(fdr)
    given = [name for name, value in (("natural_ratio", natural_ratio), ("control", control),
                                      ("labels", labels), ("control_labels", control_labels))
             if value is not None]
    if not given or ("natural_ratio" in given and len(given) > 1) or (
            "control" in given and len(given) > 1):
        raise ValueError(f"give exactly one null ratio: natural_ratio (a number), control "
                         f"(a mask of unlabelled pixels) or labels with control_labels "
                         f"(unlabelled ROIs); got {', '.join(given) or 'none'}")
    if natural_ratio is not None:
        natural_ratio = _check_positive_number(
            natural_ratio, "natural_ratio", "the minor/major ratio without enrichment, e.g. "
            "0.0036765 for 15N/14N")
    total = _as_accumulation(source)
    all_labels = total.labels
    a_label = parse(numerator, all_labels)
    b_label = parse(denominator, all_labels)
    if a_label.kind != "label" or b_label.kind != "label":
        raise ValueError("significance() compares two mass labels, e.g. '12C15N' and '12C14N'")
    ions = _ion_labels(total)
    if a_label.value not in ions or b_label.value not in ions:
        raise ValueError("significance() tests ion counts; the secondary-electron image is "
                         "not one")
    if a_label.value == b_label.value:
        raise ValueError(f"numerator and denominator are the same mass {a_label.value!r}")
    minor = _whole_counts(total.raw_counts[all_labels.index(a_label.value)], "significance")
    major = _whole_counts(total.raw_counts[all_labels.index(b_label.value)], "significance")
    if natural_ratio is not None:
        null_ratio, null_sigma, null_source = natural_ratio, 0.0, "given"
    else:
        mask, null_source = _control_mask(total.coverage.shape, control, labels,
                                          control_labels)
        inside = mask & np.isfinite(minor) & np.isfinite(major)
        minor_sum, major_sum = float(minor[inside].sum()), float(major[inside].sum())
        if minor_sum <= 0 or major_sum <= 0:
            raise ValueError(f"the control ({null_source}) holds {minor_sum:g} counts of "
                             f"{a_label.value} and {major_sum:g} of {b_label.value}: it needs "
                             f"counts of both to measure the null ratio")
        null_ratio = minor_sum / major_sum
        null_sigma = null_ratio * np.sqrt(1 / minor_sum + 1 / major_sum)
    p0 = null_ratio / (1 + null_ratio)
    k = _box_sum(minor, kernel)
    n = k + _box_sum(major, kernel)
    tested = np.isfinite(n) & (n > 0)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    p_tested, side = _binomial_p_values(k[tested], n[tested], p0, alternative, method, rng)
    p_value = np.full(n.shape, np.nan)
    p_value[tested] = p_tested
    tiny = np.finfo(np.float64).tiny  # z stays finite where p underflows to 0
    z = np.full(n.shape, np.nan)
    if alternative == "two-sided":
        z[tested] = side * stats.norm.isf(np.maximum(p_tested, tiny) / 2)
    else:
        z[tested] = side * stats.norm.isf(np.maximum(p_tested, tiny))
    q_value = discoveries = None
    if fdr is not None:
        q_value = benjamini_hochberg(p_value)
        discoveries = np.isfinite(q_value) & (q_value <= fdr)
    record = HistoryRecord("significance", {
        "numerator": a_label.value, "denominator": b_label.value,
        "null_ratio": float(null_ratio), "null_ratio_sigma": float(null_sigma),
        "null_source": null_source, "kernel": kernel, "alternative": alternative,
        "method": method, "seed": seed if not isinstance(seed, np.random.Generator)
        else "generator", "fdr": fdr, "tested_pixels": int(tested.sum()),
        "discoveries": None if discoveries is None else int(discoveries.sum())})
    return SignificanceImage(
        value=z, sigma=np.where(np.isfinite(z), 1.0, np.nan),
        expression=f"z({a_label.value}/{b_label.value} vs {null_ratio:.6g})", unit="",
        channels_used=(a_label.value, b_label.value), pixel_size_um=total.pixel_size_um,
        history=total.history + (record,), numerator=k, denominator=n - k,
        p_value=p_value, q_value=q_value, discoveries=discoveries, fdr=fdr,
        alternative=alternative, method=method, null_ratio=float(null_ratio),
        null_ratio_sigma=float(null_sigma), null_source=null_source,
        n_tested=int(tested.sum()))
