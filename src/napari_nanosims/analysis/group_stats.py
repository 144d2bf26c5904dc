"""Statistics across ROIs: classes compared (scipy.stats tests) and trends with depth."""

from __future__ import annotations

import itertools

import numpy as np

from ._tables import check_table, per_roi, resolve_quantity

__all__ = ["compare_classes", "depth_trend", "CLASS_TABLE_COLUMNS"]

#: The columns of :func:`compare_classes`'s table, in order.
CLASS_TABLE_COLUMNS = ("quantity", "test", "class", "n", "mean", "sd", "se", "median",
                       "n_enriched", "statistic", "p_value")


def compare_classes(table, quantity: str):
    """Per-class summary of one quantity and the tests between classes, as a tidy table.

    Parameters
    ----------
    table : pandas.DataFrame
        A ROI table with a ``class`` column (ROIs without a class are left out). With a
        ``file`` column (the tables of several files, as ``nanosims process`` writes
        them across files), an ROI is a (file, roi) pair and the classes are compared
        across all files.
    quantity : str
        The quantity compared (an expression, or a derived row such as
        ``'12C15N/12C14N excess'`` or ``'... x_net'``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CLASS_TABLE_COLUMNS`; the ``test`` column names the row:

        ``'summary'`` (one per class)
            ``n``, ``mean``, ``sd`` (ddof 1), ``se`` = sd/sqrt(n), ``median`` of the
            ROIs' values; ``n_enriched``: how many of them ``normalise`` called enriched
            (for the quantity or, for ``'<q> excess'``, for ``q``; NaN without its rows).
        ``'Welch t'`` (one per pair of classes, ``class`` = ``'A vs B'``)
            Welch's unequal-variance t-test (``scipy.stats.ttest_ind(equal_var=False)``);
            ``mean`` is the difference of the means (A - B), ``n`` both counts.
        ``'one-way ANOVA'``, ``'Kruskal-Wallis'``, ``'Levene'`` (``class`` = ``'all'``)
            ``scipy.stats.f_oneway``, ``kruskal`` and ``levene`` (median-centred) across
            all classes with at least 2 values.

        ``statistic`` and ``p_value`` are NaN where a test cannot run (fewer than 2
        classes with 2 values, or values that are all equal).
    """
    import pandas as pd
    from scipy import stats

    table = check_table(table)
    if "class" not in table.columns:
        raise ValueError("the table has no 'class' column; give the ROIs classes first "
                         "(roi_table(..., classes=...) or a classify step)")
    if "file" in table.columns:
        table = table.assign(roi=table.groupby(["file", "roi"], sort=False).ngroup() + 1)
    found, _ = resolve_quantity(table, quantity)
    rows = per_roi(table, found)
    rows = rows[rows["class"].notna() & np.isfinite(rows["value"].to_numpy(dtype=float))]
    enriched = None
    # the rows normalise added for this quantity (or for the one whose excess it is)
    flags = f"{found.removesuffix(' excess')} enriched"
    if (table["quantity"] == flags).any():
        enriched = per_roi(table, flags)["value"]
    groups = {name: group["value"].to_numpy(dtype=float)
              for name, group in sorted(rows.groupby("class", sort=False),
                                        key=lambda item: str(item[0]))}
    records = []
    for name, values in groups.items():
        n = len(values)
        sd = float(np.std(values, ddof=1)) if n > 1 else np.nan
        flagged = np.nan
        if enriched is not None:
            flagged = float(np.nansum(enriched.reindex(rows.index[rows["class"] == name])
                                      .to_numpy(dtype=float)))
        records.append(dict(test="summary", **{"class": name}, n=n,
                            mean=float(values.mean()), sd=sd, se=sd / np.sqrt(n),
                            median=float(np.median(values)), n_enriched=flagged))
    testable = {name: v for name, v in groups.items() if len(v) >= 2}

    def run(test, *samples):
        try:
            with np.errstate(all="ignore"):
                result = test(*samples)
            return float(result.statistic), float(result.pvalue)
        except ValueError:  # too few values, all values equal
            return np.nan, np.nan

    for (a, va), (b, vb) in itertools.combinations(testable.items(), 2):
        statistic, p = run(lambda x, y: stats.ttest_ind(x, y, equal_var=False), va, vb)
        records.append(dict(test="Welch t", **{"class": f"{a} vs {b}"}, n=len(va) + len(vb),
                            mean=float(va.mean() - vb.mean()), statistic=statistic,
                            p_value=p))
    if len(testable) >= 2:
        samples = list(testable.values())
        n_all = sum(len(v) for v in samples)
        for name, test in (("one-way ANOVA", stats.f_oneway),
                           ("Kruskal-Wallis", stats.kruskal), ("Levene", stats.levene)):
            statistic, p = run(test, *samples)
            records.append(dict(test=name, **{"class": "all"}, n=n_all,
                                statistic=statistic, p_value=p))
    result = pd.DataFrame.from_records(records, columns=CLASS_TABLE_COLUMNS[1:])
    result.insert(0, "quantity", found)
    return result


def depth_trend(profile):
    """Trend of each ROI's per-frame value with depth: a straight line fitted with Poisson
    weights, its slope, the slope's sigma and the two-sided p-value of no trend.

    Parameters
    ----------
    profile : pandas.DataFrame
        From :func:`~napari_nanosims.depth_profile`: ``roi``, ``frame``, ``value``,
        ``sigma``.

    Returns
    -------
    pandas.DataFrame
        One row per ROI: ``roi``, ``frames_used``, ``slope`` (value per frame),
        ``slope_sigma``, ``intercept`` (value at frame 0), ``p_value``, ``chi2``, ``dof``.
        Weighted least squares with weights ``1/sigma**2``: ``slope_sigma**2 =
        1 / sum(w (f - f_w)**2)`` (``f_w`` the weighted mean frame), which is the error
        when the per-frame sigmas are right; ``p_value = 2 * Phi(-|slope| /
        slope_sigma)``. ``chi2`` is the weighted sum of squared residuals (``dof`` = frames
        - 2): a large ``chi2/dof`` says the frames scatter more than counting allows
        (then see the dispersion test of :func:`~napari_nanosims.roi_table`). Frames
        whose value or sigma is not finite, or whose sigma is 0 (no counts), are left
        out; an ROI with fewer than 3 such frames gets NaN.

    Notes
    -----
    LANS flags a trend when a polynomial fit reduces the residual variance significantly
    (Levene's test); this is the linear, weighted version of that question.
    """
    import pandas as pd
    from scipy import stats

    if not isinstance(profile, pd.DataFrame) or not {"roi", "frame", "value",
                                                      "sigma"} <= set(profile.columns):
        raise ValueError("profile must be a depth profile (a DataFrame with roi, frame, "
                         "value and sigma; see depth_profile)")
    frame = profile["frame"].to_numpy(dtype=float)
    value = profile["value"].to_numpy(dtype=float)
    sigma = profile["sigma"].to_numpy(dtype=float)
    used = np.isfinite(frame) & np.isfinite(value) & np.isfinite(sigma) & (sigma > 0)
    rois, index = np.unique(profile["roi"].to_numpy(), return_inverse=True)
    n = len(rois)
    weight = np.where(used, 1.0 / np.where(used, sigma, 1.0) ** 2, 0.0)
    frame, value = np.where(used, frame, 0.0), np.where(used, value, 0.0)

    def total(x):
        return np.bincount(index, weights=x, minlength=n)

    count = total(used.astype(float))
    w = total(weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_f, mean_v = total(weight * frame) / w, total(weight * value) / w
        s_ff = total(weight * (frame - mean_f[index]) ** 2)
        s_fv = total(weight * (frame - mean_f[index]) * (value - mean_v[index]))
        slope = s_fv / s_ff
        intercept = mean_v - slope * mean_f
        residual = value - intercept[index] - slope[index] * frame
        chi2 = total(weight * residual ** 2)
        slope_sigma = 1.0 / np.sqrt(s_ff)
        p_value = 2.0 * stats.norm.sf(np.abs(slope) / slope_sigma)
    enough = (count >= 3) & (s_ff > 0)

    def masked(x):
        return np.where(enough, x, np.nan)

    return pd.DataFrame({"roi": rois, "frames_used": count.astype(int),
                         "slope": masked(slope), "slope_sigma": masked(slope_sigma),
                         "intercept": masked(intercept), "p_value": masked(p_value),
                         "chi2": masked(chi2), "dof": masked(count - 2)})
