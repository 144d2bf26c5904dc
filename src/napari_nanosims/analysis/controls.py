"""Controls and standards: excess over an unlabelled control class, enrichment, and the
correction of instrumental mass fractionation with a measured standard.

Both take the tidy ROI table of :func:`~napari_nanosims.roi_table` (with a ``class``
column) and return a new table with rows added; the input is never changed.
"""

from __future__ import annotations

import numpy as np

from ._tables import (
    check_table,
    class_rois,
    derived_rows,
    per_roi,
    reference_value,
    replace_rows,
    resolve_quantity,
)

__all__ = ["normalise", "calibrate", "enrichment_threshold", "NOMINAL_FALSE_POSITIVE"]

#: The one-sided tail of a normal distribution beyond 3 standard deviations (0.135 %):
#: the fraction of unlabelled cells that the enrichment rule may call "enriched".
NOMINAL_FALSE_POSITIVE = 0.0013498980316301035


def enrichment_threshold(n_controls: int) -> float:
    """How many control SDs an excess must exceed to be called enriched.

    3 for many control ROIs. With n control ROIs, the mean and SD are themselves
    estimates, and a plain 3-SD rule would call an unlabelled cell enriched far more often
    than the 0.135 % of a normal 3-SD tail (about 0.9 % with 10 controls, 6 % with 3). The
    threshold is therefore the normal-theory prediction bound with that tail:
    ``t_{1-p, n-1} * sqrt(1 + 1/n)`` with ``p`` = :data:`NOMINAL_FALSE_POSITIVE`
    (Student's t; 4.29 at n = 10, 3.40 at n = 30, 3.12 at n = 100, 3 as n grows).

    Parameters
    ----------
    n_controls : int
        Number of control ROIs (at least 3).

    Returns
    -------
    float
        The multiple of the control ROIs' SD.
    """
    from scipy import stats

    if isinstance(n_controls, bool) or not isinstance(n_controls, (int, np.integer)) or \
            n_controls < 3:
        raise ValueError(f"n_controls must be a whole number >= 3, not {n_controls!r}")
    n = int(n_controls)
    return float(stats.t.isf(NOMINAL_FALSE_POSITIVE, n - 1) * np.sqrt(1.0 + 1.0 / n))


def normalise(table, quantity: str, control="control"):
    """Excess of every ROI over the control class, with its error and an enrichment test.

    Parameters
    ----------
    table : pandas.DataFrame
        A ROI table (:func:`~napari_nanosims.roi_table`) with a ``class`` column and the
        channel rows of the masses ``quantity`` uses.
    quantity : str
        An expression of the table (``'12C15N/12C14N'``, ``'100*13C/(12C+13C)'``;
        spaces in labels optional).
    control : str or pandas.DataFrame
        The class of the unlabelled control ROIs, or the ROI table of a separate control
        acquisition (all its ROIs are controls).

    Returns
    -------
    pandas.DataFrame
        The table with two rows added per ROI (earlier ones of the same names replaced):

        ``'<quantity> excess'``
            ``value`` = value - control value, in the quantity's unit (atom-% excess for
            ``100*A/(A+B)``); ``sigma`` = sqrt(sigma**2 + control error**2);
            ``p_value`` = the one-sided p-value of excess/sigma (normal);
            ``detection_limit`` as the quantity's row.
        ``'<quantity> enriched'``
            ``value`` 1.0 (enriched), 0.0 (not) or NaN (fewer than 3 control ROIs);
            ``sigma`` NaN; ``p_value`` as above.

        The control value is the quantity of the summed counts of all control ROIs (a
        ratio of pooled counts); its error is the standard error of the control ROIs'
        values when there are at least 3 of them, else the Poisson error of the pooled
        value. An ROI is enriched when its excess is above
        :func:`enrichment_threshold` (n) standard deviations of the control ROIs'
        values: 3 SD widened for the number n of controls, so that unlabelled cells like
        the controls are called enriched in at most 0.135 % of cases.

    Notes
    -----
    The SD of the control ROIs contains their counting noise; the rule assumes that the
    other ROIs have about as many counts as the controls (a much smaller cell scatters
    more). The p-value uses each ROI's own Poisson error and the control's error only.
    """
    from scipy import stats

    table = check_table(table)
    found, node = resolve_quantity(table, quantity)
    source, controls = class_rois(table, found, control, "control")
    if not isinstance(control, str) and source is not table:
        _, node_control = resolve_quantity(source, found, "control table")
    else:
        node_control = node
    value, error, sd, n = reference_value(source, node_control, controls, found, "control")
    rows = per_roi(table, found)
    excess = rows["value"].to_numpy(dtype=float) - value
    sigma = np.sqrt(rows["sigma"].to_numpy(dtype=float) ** 2 + error ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_value = stats.norm.sf(excess / sigma)
        enriched = (np.where(excess > enrichment_threshold(n) * sd, 1.0, 0.0) if n >= 3
                    else np.full(len(rows), np.nan))
    enriched = np.where(np.isfinite(excess), enriched, np.nan)
    detection = (rows["detection_limit"].to_numpy(dtype=float)
                 if "detection_limit" in rows.columns else np.nan)
    return replace_rows(table, [
        derived_rows(rows, f"{found} excess", excess, sigma, p_value, detection),
        derived_rows(rows, f"{found} enriched", enriched, np.nan, p_value)])


def _reference(reference):
    from .ratios import STANDARDS

    if isinstance(reference, str):
        if reference not in STANDARDS:
            raise ValueError(f"reference must be a number or one of "
                             f"{', '.join(map(repr, STANDARDS))}; got {reference!r}")
        return STANDARDS[reference]
    return _positive(reference, "reference")


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                         np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number above 0, not {value!r}")
    return float(value)


def calibrate(table, quantity: str, standard="standard", true_value=None, *,
              reference=None):
    """Correct instrumental mass fractionation (IMF) with a measured standard.

    Parameters
    ----------
    table : pandas.DataFrame
        A ROI table with a ``class`` column and the channel rows of ``quantity``.
    quantity : str
        A ratio of the table (``'13C/12C'``): IMF is a factor on measured ratios.
    standard : str or pandas.DataFrame
        The class of the standard's ROIs, or the ROI table of a separate acquisition of
        the standard (all its ROIs).
    true_value : float
        The standard's accepted value of ``quantity`` (same unit), above 0.
    reference : float or str, optional
        A reference ratio (a number, or a key of :data:`napari_nanosims.STANDARDS` such as
        ``'VPDB 13C/12C'``): a delta row against it is added too.

    Returns
    -------
    pandas.DataFrame
        The table with ``'<quantity> calibrated'`` rows (and ``'<quantity> delta'`` rows,
        per mil, with ``reference``) added per ROI. ``alpha`` = pooled measured value of
        the standard / ``true_value``; calibrated = value / alpha, with
        ``(sigma_c/c)**2 = (sigma/value)**2 + (sigma_s/m_s)**2`` (first order; ``m_s``
        the standard's pooled value, ``sigma_s`` its error: the SE across its ROIs when
        there are at least 3, else the Poisson error of the pooled value);
        ``delta = 1000 (c / reference - 1)``, ``sigma_delta = 1000 sigma_c / reference``.
        The standard's ROIs are calibrated too (they read ``true_value`` on average).
    """
    table = check_table(table)
    true_value = _positive(true_value, "true_value")
    found, node = resolve_quantity(table, quantity)
    source, standards = class_rois(table, found, standard, "standard")
    node_standard = node if source is table else resolve_quantity(source, found,
                                                                  "standard table")[1]
    measured, error, _, _ = reference_value(source, node_standard, standards, found,
                                            "standard")
    if not measured > 0:
        raise ValueError(f"the standard's pooled {found!r} is {measured}; it must be above 0 "
                         "to calibrate")
    alpha = measured / true_value
    rows = per_roi(table, found)
    value = rows["value"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        corrected = value / alpha
        # d(c)/d(value) = 1/alpha, d(c)/d(m_s) = -c/m_s (true_value taken as exact)
        sigma = np.sqrt((rows["sigma"].to_numpy(dtype=float) / alpha) ** 2
                        + (corrected * error / measured) ** 2)
    new = [derived_rows(rows, f"{found} calibrated", corrected, sigma)]
    if reference is not None:
        ratio = _reference(reference)
        new.append(derived_rows(rows, f"{found} delta", 1000.0 * (corrected / ratio - 1.0),
                                1000.0 * sigma / ratio))
    return replace_rows(table, new)
