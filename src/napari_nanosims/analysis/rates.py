"""From isotope fractions to assimilation and growth: substrate-normalised excess, net
assimilation, specific growth and assimilation rates (Polerecky et al. 2021), and the
smallest excess a count budget can detect.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._checks import check_number
from ._tables import check_table, derived_rows, per_roi, replace_rows, resolve_quantity
from .bounds import DILUTION_BOUNDS, FRACTION_BOUNDS, HOURS_BOUNDS

__all__ = ["assimilation", "detection_limit"]


def detection_limit(total_counts, fraction, alpha: float = 0.05, power: float = 0.8):
    """The smallest excess atom fraction detectable with ``total_counts`` counts.

    ``(z_{1-alpha} + z_{power}) * sqrt(F (1 - F) / N)``: an ROI whose true fraction is
    this far above ``F`` gives a one-sided test at level ``alpha`` a significant result
    with probability ``power`` (normal approximation of binomial counts).

    Parameters
    ----------
    total_counts : float or array_like
        N, counts of both isotopes together (A + B), above 0.
    fraction : float or array_like
        F = A / (A + B), the fraction without label (the control's or the natural one),
        between 0 and 1.
    alpha : float
        False-positive level of the one-sided test, in (0, 0.5].
    power : float
        Probability of detecting an excess of that size, in [0.5, 1).

    Returns
    -------
    float or numpy.ndarray
        The smallest detectable excess, as a fraction (multiply by 100 for atom-%).
    """
    from scipy import stats

    alpha = check_number(alpha, "alpha", float, above=0.0, maximum=0.5)
    power = check_number(power, "power", float, minimum=0.5, maximum=1 - 1e-12)
    counts = np.asarray(total_counts, dtype=float)
    fraction = np.asarray(fraction, dtype=float)
    if np.any(~np.isfinite(counts) | (counts <= 0)):
        raise ValueError("total_counts must be finite numbers above 0")
    if np.any(~np.isfinite(fraction) | (fraction < 0) | (fraction > 1)):
        raise ValueError("fraction must be between 0 and 1 (an atom fraction, not atom-%)")
    z = stats.norm.isf(alpha) + stats.norm.ppf(power)
    result = z * np.sqrt(fraction * (1.0 - fraction) / counts)
    return float(result) if result.ndim == 0 else result




def _content(table, rows, content):
    """Per-ROI content (mol): a number, a mapping ROI -> number, or a column's name."""
    if content is None:
        return None
    if isinstance(content, str):
        if content not in table.columns:
            raise ValueError(f"content {content!r} is not a column of the table")
        values = rows[content].to_numpy(dtype=float)
    elif isinstance(content, dict):
        missing = set(rows.index) - set(content)
        if missing:
            raise ValueError(f"content has no value for ROI(s) {sorted(missing)}")
        values = np.array([float(content[roi]) for roi in rows.index])
    elif isinstance(content, numbers.Real) and not isinstance(content, bool):
        values = np.full(len(rows), float(content))
    else:
        raise ValueError(f"content must be a number (mol per ROI), a mapping ROI -> mol or "
                         f"a column name, not {type(content).__name__}")
    if np.any(~np.isfinite(values) | (values < 0)):
        raise ValueError("content must be finite amounts >= 0 (mol of the element per ROI)")
    return values


def assimilation(table, fraction: str, *, natural, substrate, hours=None, content=None,
                 dilution: float = 0.0):
    """Per ROI: excess enrichment, net assimilation and, with the time, rates.

    Parameters
    ----------
    table : pandas.DataFrame
        A ROI table (:func:`~napari_nanosims.roi_table`).
    fraction : str
        The quantity holding the isotope fraction x of each ROI, e.g.
        ``'12C15N/(12C14N+12C15N)'`` (or ``'100*...'`` in atom-%, with ``natural`` and
        ``substrate`` in atom-% too).
    natural : float
        x_i, the fraction before the incubation (unlabelled biomass: natural abundance or
        the control's value), in the unit of ``fraction``; 0 to 100.
    substrate : float
        x_S, the fraction of the labelled substrate, same unit (0 to 100); not equal to
        ``natural``.
    hours : float, optional
        Incubation time t, hours (above 0, at most 1e6): adds k and, with ``content``,
        the rate.
    content : float, mapping or str, optional
        Amount of the element per ROI, mol: one number, ``{roi: mol}``, or the name of a
        column of the table (for example one computed from ``area_um2``).
    dilution : float
        D in [0, 0.999]: the fraction of the label lost in sample preparation (fixation,
        CARD-FISH, embedding; Musat et al. 2014); the excess is divided by ``1 - D``.

    Returns
    -------
    pandas.DataFrame
        The table with rows added per ROI (earlier ones of the same names replaced), each
        with its first-order sigma from the sigma of x (``natural``, ``substrate``, the
        time and the content are taken as exact):

        ``'<fraction> x_E'``
            excess enrichment ``(x' - x_i) / (x_S - x_i)``, with
            ``x' = x_i + (x - x_i) / (1 - D)``.
        ``'<fraction> x_net'``
            net assimilation ``(x' - x_i) / (x_S - x')`` (new over old element); NaN where
            ``x'`` reaches ``x_S``.
        ``'<fraction> k'``
            specific growth rate ``ln(1 + x_net) / t``, per hour (with ``hours``).
        ``'<fraction> assimilation rate'``
            ``x_E * content / t``, mol per hour (with ``hours`` and ``content``).

    References
    ----------
    Polerecky et al. (2021) Front. Microbiol. 12:621634; Stryhanyuk et al. (2018) Front.
    Microbiol. 9:2342; Musat et al. (2014) Syst. Appl. Microbiol. 37:267 (dilution).
    """
    table = check_table(table)
    x_i = check_number(natural, "natural", **FRACTION_BOUNDS)
    x_s = check_number(substrate, "substrate", **FRACTION_BOUNDS)
    if x_s == x_i:
        raise ValueError(f"substrate ({x_s}) must differ from natural ({x_i})")
    dilution = check_number(dilution, "dilution", **DILUTION_BOUNDS)
    if hours is not None:
        hours = check_number(hours, "hours", **HOURS_BOUNDS)
    found, _ = resolve_quantity(table, fraction)
    rows = per_roi(table, found)
    amount = _content(table, rows, content)
    if amount is not None and hours is None:
        raise ValueError("an assimilation rate needs hours as well as content")
    x = rows["value"].to_numpy(dtype=float)
    sigma_x = rows["sigma"].to_numpy(dtype=float)
    # Label lost in preparation: the measured excess is (1 - D) of the true one.
    x_true = x_i + (x - x_i) / (1.0 - dilution)
    sigma_true = sigma_x / (1.0 - dilution)
    span = x_s - x_i
    x_e = (x_true - x_i) / span
    sigma_e = sigma_true / abs(span)
    with np.errstate(invalid="ignore", divide="ignore"):
        left = x_s - x_true
        usable = np.sign(left) == np.sign(span)  # x' between x_i's side and x_S
        x_net = np.where(usable, (x_true - x_i) / left, np.nan)
        # d x_net / d x' = (x_S - x_i) / (x_S - x')**2
        sigma_net = np.where(usable, sigma_true * abs(span) / left ** 2, np.nan)
    new = [derived_rows(rows, f"{found} x_E", x_e, sigma_e),
           derived_rows(rows, f"{found} x_net", x_net, sigma_net)]
    if hours is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            growth = np.log1p(x_net) / hours
            sigma_k = sigma_net / ((1.0 + x_net) * hours)
        new.append(derived_rows(rows, f"{found} k", growth, sigma_k))
        if amount is not None:
            new.append(derived_rows(rows, f"{found} assimilation rate",
                                    x_e * amount / hours, sigma_e * amount / hours))
    return replace_rows(table, new)
