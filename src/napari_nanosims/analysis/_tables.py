"""Reading and extending the tidy ROI table of :func:`~napari_nanosims.roi_table`.

The table has one row per ROI and quantity: channel rows (total counts, sigma = sqrt of
the summed variance), expression rows (ratios of sums with their errors) and the rows
that :mod:`.controls` and :mod:`.rates` add (``'<quantity> excess'``, ...). Those
functions find a quantity's rows here, pool counts over a class of ROIs and append new
rows built from a quantity's rows, so that every derived row keeps the ROI's size,
position and class.
"""

from __future__ import annotations

import numpy as np

from .expression import Node, evaluate_node, parse

__all__ = ["DERIVED_SUFFIXES", "channel_labels", "resolve_quantity", "per_roi", "pooled",
           "derived_rows", "replace_rows", "check_table", "class_rois"]

#: The words the derived rows add after a quantity's name; a quantity ending in one of
#: them is never taken for a channel.
DERIVED_SUFFIXES = (" excess", " enriched", " calibrated", " delta", " x_E", " x_net",
                    " k", " assimilation rate")
# Characters that never occur in a mass label but do in every expression of two masses.
_OPERATORS = set("+-*/(),")
# Columns a derived row does not inherit from the row it is built from.
_TEST_COLUMNS = ("chi2", "dof", "p_value", "mswd", "sigma_inflated", "detection_limit")


def check_table(table, name: str = "table"):
    """The table as a DataFrame with the columns every function here needs."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name} must be a ROI table (a pandas DataFrame from roi_table), "
                         f"not {type(table).__name__}")
    missing = [c for c in ("roi", "quantity", "value", "sigma") if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {', '.join(missing)} of a ROI table")
    return table


def channel_labels(table) -> list[str]:
    """The mass labels among the table's quantities (the channel rows)."""
    return [q for q in dict.fromkeys(table["quantity"].astype(str))
            if not (_OPERATORS & set(q)) and not q.endswith(DERIVED_SUFFIXES)]


def _squeezed(text: str) -> str:
    return "".join(str(text).split())


def resolve_quantity(table, quantity: str, name: str = "table") -> tuple[str, Node | None]:
    """(the quantity as the table writes it, its parsed expression or None).

    ``quantity`` may be written without the labels' spaces (``12C15N/12C14N`` for the
    table's ``12C 15N/12C 14N``). The expression is None for a quantity that is not an
    expression of the table's channels (a derived row such as ``'... excess'``).
    """
    if not isinstance(quantity, str) or not quantity.strip():
        raise ValueError(f"quantity must be a non-empty text naming rows of the {name}, "
                         f"not {quantity!r}")
    present = list(dict.fromkeys(table["quantity"].astype(str)))
    labels = channel_labels(table)
    node = None
    try:
        node = parse(quantity, labels) if labels else None
    except ValueError:
        node = None
    candidates = [quantity.strip()] + ([node.text()] if node is not None else [])
    for candidate in candidates:
        matches = [q for q in present if q == candidate] or \
            [q for q in present if _squeezed(q) == _squeezed(candidate)]
        if matches:
            found = matches[0]
            if node is None or node.text() != found:
                try:
                    node = parse(found, labels) if labels else None
                except ValueError:
                    node = None
            return found, node
    raise ValueError(f"the {name} has no rows of {quantity!r}; its quantities are "
                     f"{', '.join(map(repr, present))}")


def per_roi(table, quantity: str):
    """The rows of one quantity, one per ROI, indexed by ROI (a copy)."""
    rows = table[table["quantity"].astype(str) == quantity]
    if rows["roi"].duplicated().any():
        raise ValueError(f"quantity {quantity!r} has more than one row per ROI (a table "
                         "of several files? pass one file's table, or one file's rows)")
    return rows.set_index("roi", drop=False)


def class_rois(table, quantity: str, which, role: str):
    """The rows of ``quantity`` of the reference ROIs: those of class ``which`` in
    ``table``, or every ROI of ``which`` when it is a table itself (a separate
    acquisition)."""
    import pandas as pd

    if isinstance(which, pd.DataFrame):
        source = check_table(which, f"{role} table")
        found, _ = resolve_quantity(source, quantity, f"{role} table")
        return source, per_roi(source, found)
    if "class" not in table.columns:
        raise ValueError(f"the table has no 'class' column; give the ROIs classes "
                         f"(roi_table(..., classes=...) or a classify step) with "
                         f"{role} {which!r}")
    rows = per_roi(table, quantity)
    chosen = rows[rows["class"] == which]
    if chosen.empty:
        present = sorted({str(c) for c in table["class"].dropna().unique()})
        raise ValueError(f"no ROI of class {which!r} ({role}) has rows of {quantity!r}; "
                         f"classes: {', '.join(present) or 'none'}")
    return table, chosen


def pooled(source, node: Node | None, rois, quantity: str, role: str):
    """The quantity of the ROIs' summed counts and its first-order Poisson error.

    The counts of each mass the expression uses are summed over ``rois`` (their channel
    rows: value = counts, sigma**2 = variance), then the expression is evaluated on the
    sums: a ratio of pooled counts, never a mean of ratios.
    """
    if node is None:
        raise ValueError(f"{role}: {quantity!r} is not an expression of the table's "
                         "channels, so its counts cannot be pooled; use a quantity the ROI "
                         "table computed from its channel rows")
    sums, variances = {}, {}
    for label in node.labels():
        rows = per_roi(source, label)
        missing = set(rois) - set(rows.index)
        if missing:
            raise ValueError(f"{role}: ROI(s) {sorted(missing)} have no {label!r} row")
        sums[label] = float(rows.loc[list(rois), "value"].sum())
        variances[label] = float((rows.loc[list(rois), "sigma"] ** 2).sum())
    result = evaluate_node(node, sums)
    variance = sum(float(d) ** 2 * variances[label] for label, d in result.gradient.items())
    return float(result.value), float(np.sqrt(variance))


def reference_value(source, node, rows, quantity: str, role: str):
    """(pooled value, its error, SD across the ROIs, number of ROIs) of a reference class.

    The error is the standard error across the ROIs when there are at least 3, else the
    Poisson error of the pooled value; the SD is NaN below 3 ROIs.
    """
    value, poisson = pooled(source, node, list(rows.index), quantity, role)
    values = rows["value"].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    sd = float(np.std(values, ddof=1)) if n >= 3 else float("nan")
    error = sd / np.sqrt(n) if n >= 3 else poisson
    return value, float(error), sd, n


def derived_rows(base, quantity: str, value, sigma, p_value=np.nan, detection=np.nan):
    """New rows named ``quantity`` built from ``base`` (one row per ROI): the ROI's size,
    position and class are kept, the dispersion columns emptied."""
    rows = base.reset_index(drop=True).copy()
    rows["quantity"] = quantity
    rows["value"] = np.asarray(value, dtype=float)
    rows["sigma"] = np.asarray(sigma, dtype=float)
    for column in _TEST_COLUMNS:
        if column in rows.columns:
            rows[column] = np.nan
    rows["p_value"] = np.asarray(p_value, dtype=float) * np.ones(len(rows))
    if "detection_limit" in rows.columns:
        rows["detection_limit"] = np.asarray(detection, dtype=float) * np.ones(len(rows))
    return rows


def replace_rows(table, new_tables):
    """``table`` without earlier rows of the new quantities, with the new rows appended
    (running a function twice replaces its rows)."""
    import pandas as pd

    names = {q for rows in new_tables for q in rows["quantity"].unique()}
    kept = table[~table["quantity"].astype(str).isin(names)]
    return pd.concat([kept, *new_tables], ignore_index=True)
