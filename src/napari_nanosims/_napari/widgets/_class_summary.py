"""The ROIs tab's class tables and their summary, through the library (no Qt).

:func:`derive` runs :func:`with_classes`, :func:`normalise`, :func:`calibrate`,
:func:`assimilation` and :func:`compare_classes` on the measured ROI table with the
inputs the tab holds; :func:`summary_text` shows their results in a few lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...analysis.classes import with_classes
from ...analysis.controls import calibrate, normalise
from ...analysis.group_stats import compare_classes
from ...analysis.presets import LABEL_PRESETS
from ...analysis.rates import assimilation
from ._roi_table import format_p, format_value_sigma


def class_list_text(classes: dict) -> str:
    """``{1: 'control', 2: 'control', 3: 'control', 7: 'control', 4: 'cells'}`` ->
    ``'1-3, 7: control; 4: cells'`` (what ``classify``'s ``rois`` reads)."""
    groups: dict = {}
    for roi in sorted(classes):
        groups.setdefault(classes[roi], []).append(roi)
    parts = []
    for name, rois in groups.items():
        runs: list[list[Any]] = []  # [first, last] ROI numbers
        for roi in rois:  # consecutive ROIs as 'first-last'
            if runs and roi == runs[-1][1] + 1:
                runs[-1][1] = roi
            else:
                runs.append([roi, roi])
        parts.append(", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
                     + f": {name}")
    return "; ".join(parts)


def check_name(name: str) -> str:
    if ":" in name or ";" in name:
        raise ValueError(f"class {name!r}: a class name may not contain ':' or ';'")
    return name


def derive(statistics, classes: dict, quantity, *, control=None, standard=None,
           true_value=None, rates=None):
    """The tables the tab shows and exports, through the library.

    Returns (per-ROI table, per-class table or None, the steps as (name, parameters) in
    recipe form, notes). Without classes the measured table is returned as it is. A step
    whose inputs are refused (too few controls, substrate = natural, ...) is left out with
    its message in the notes.
    """
    import pandas as pd

    if not classes:
        return statistics, None, [], []
    table = with_classes(statistics, classes)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("classify", {"rois": class_list_text(classes)})]
    notes: list[str] = []
    if not quantity:
        return table, None, steps, notes
    calls: list[tuple[str, dict[str, Any], Callable[..., Any]]] = []
    if control is not None:
        calls.append(("normalise", dict(quantity=quantity, control=control), normalise))
    if standard is not None and true_value is not None:
        calls.append(("calibrate", dict(quantity=quantity, standard=standard,
                                        true_value=true_value), calibrate))
    if rates is not None:
        calls.append(("assimilation", dict(fraction=quantity, **rates), assimilation))
    for name, parameters, function in calls:
        try:
            table = function(table, **parameters)
        except ValueError as exc:
            notes.append(f"{name}: {exc}")
            continue
        steps.append((name, parameters))
    present = set(table["quantity"])
    compared = [quantity] + [f"{quantity} {what}" for what in
                             ("excess", "calibrated", "x_net", "k")
                             if f"{quantity} {what}" in present]
    steps.extend(("compare_classes", {"quantity": q}) for q in compared)
    class_table = pd.concat([compare_classes(table, q) for q in compared],
                            ignore_index=True)
    return table, class_table, steps, notes


def summary_text(table, class_table, quantity) -> str:
    """One line per class (n, mean ± SE, excess, enriched, rates) and the tests."""
    if class_table is None or not len(class_table):
        return ""
    rows = class_table[class_table["test"] == "summary"]

    def of(what):
        return rows[rows["quantity"] == (f"{quantity} {what}" if what else quantity)] \
            .set_index("class")

    main, excess, k, x_net = of(""), of("excess"), of("k"), of("x_net")
    flags = table[table["quantity"] == f"{quantity} enriched"]["value"]
    counted = bool(flags.notna().any())
    lines = []
    def mean_se(part, name):
        return format_value_sigma(part.loc[name, "mean"], part.loc[name, "se"])

    for name, row in main.iterrows():
        text = f"{name}: n {int(row.n)}, {mean_se(main, name)}"
        if name in excess.index:
            text += f"; excess {mean_se(excess, name)}"
            text += (f", enriched {int(row.n_enriched)}/{int(row.n)}" if counted else "")
        for label, part, unit in (("x_net", x_net, ""), ("k", k, " /h")):
            if name in part.index:
                text += f"; {label} {mean_se(part, name)}{unit}"
        lines.append(text)
    if len(excess) and not counted:
        lines.append("enriched: needs 3 control ROIs or more")
    tests = class_table[(class_table["quantity"] == quantity)
                        & (class_table["test"] != "summary")]
    shown = [f"{row.test}{' ' + row['class'] if row.test == 'Welch t' else ''} "
             f"{format_p(row.p_value) or 'p -'}" for _, row in tests.iterrows()]
    if shown:
        lines.append("; ".join(shown))
    return "\n".join(lines)


def natural_of(quantity: str):
    """The natural value of a preset's fraction written as ``quantity`` (atom-% for
    ``100*...``), else None."""
    squeezed = "".join(str(quantity).split())
    for preset in LABEL_PRESETS.values():
        if preset.fraction is None or preset.natural_fraction is None:
            continue
        fraction = "".join(preset.fraction.split())
        if squeezed == fraction:
            return preset.natural_fraction
        if squeezed == "100*" + fraction:
            return 100 * preset.natural_fraction
    return None
