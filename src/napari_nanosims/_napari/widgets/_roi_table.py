"""The ROIs tab's table: compact enough for a ~300 px panel, the full numbers behind it.

One row per ROI: ``ROI | px | <expression>`` (``ROI | class | px | ...`` once ROIs have
classes) with ``0.00517 ± 0.00012 (p 0.56)`` per
expression; the full-precision value, sigma, p-value, area and channel totals are in the
row's tooltip and in the exported CSV. Items sort by their number, not their text.
"""

from __future__ import annotations

import math
from typing import cast

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

#: Item data roles holding the numbers of a value cell (value, sigma, p-value).
VALUE_ROLE = Qt.ItemDataRole.UserRole
SIGMA_ROLE = Qt.ItemDataRole.UserRole + 1
P_ROLE = Qt.ItemDataRole.UserRole + 2


def format_value_sigma(value: float, sigma: float) -> str:
    """``0.00517 ± 0.00012``: sigma to 2 significant digits, the value to the same decimal
    place (at most 4 significant digits); ``5.17e-06 ± 1.2e-07`` for very small or large
    values; ``-`` for a missing value."""
    if not math.isfinite(value):
        return "-"
    if not math.isfinite(sigma) or sigma <= 0:
        return f"{value:.4g}"
    if value != 0 and not 1e-3 <= abs(value) < 1e5:
        return f"{value:.3g} ± {sigma:.2g}"
    decimals = 1 - math.floor(math.log10(sigma))
    if value != 0:  # never more than 4 significant digits of the value
        decimals = min(decimals, 3 - math.floor(math.log10(abs(value))))
    decimals = max(decimals, 0)
    shown_sigma = f"{sigma:.{decimals}f}"
    if float(shown_sigma) == 0:
        shown_sigma = f"{sigma:.2g}"
    return f"{value:.{decimals}f} ± {shown_sigma}"


def format_p(p: float) -> str:
    """``p 0.56``, ``p 0.003``, ``p<0.001``; empty when there is no test (one frame)."""
    if not math.isfinite(p):
        return ""
    if p < 0.001:
        return "p<0.001"
    return f"p {p:.2f}" if p >= 0.01 else f"p {p:.3f}"


def format_result(value: float, sigma: float, p: float) -> str:
    """``0.00517 ± 0.00012 (p 0.56)``."""
    text, test = format_value_sigma(value, sigma), format_p(p)
    return f"{text} ({test})" if test else text


class _Item(QTableWidgetItem):
    """A table item sorted by a number (``VALUE_ROLE``), shown as formatted text."""

    def __lt__(self, other):
        mine, theirs = self.data(VALUE_ROLE), other.data(VALUE_ROLE)
        if mine is None or theirs is None:
            return super().__lt__(other)
        mine = mine if math.isfinite(mine) else math.inf  # missing values sort last
        theirs = theirs if math.isfinite(theirs) else math.inf
        return mine < theirs


def make_table() -> QTableWidget:
    """The empty table: sortable, whole rows selected, no row numbers (ROI is a column)."""
    table = QTableWidget()
    table.setSortingEnabled(True)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    rows = table.verticalHeader()
    assert rows is not None  # every QTableWidget has one
    rows.setVisible(False)
    table.setMinimumHeight(160)
    return table


def _item(text: str, number: float, tooltip: str) -> _Item:
    item = _Item(text)
    item.setData(VALUE_ROLE, float(number))
    item.setToolTip(tooltip)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def fill_table(table: QTableWidget, statistics, quantities: list[str],
               channels: list[str], classes: dict | None = None) -> None:
    """Fill ``table`` from the tidy ROI table ``statistics`` (``roi_table``'s result):
    one column per quantity after ROI, class (when ``classes``, ``{roi: class}``, names
    any) and px; channel totals in the tooltips."""
    shown = bool(classes)
    first = 3 if shown else 2  # the first quantity's column
    columns = ["ROI"] + (["class"] if shown else []) + ["px"] + list(quantities)
    rois = sorted(statistics.roi.unique()) if len(statistics) else []
    table.setSortingEnabled(False)
    table.clear()
    table.setColumnCount(len(columns))
    table.setHorizontalHeaderLabels(columns)
    for column, quantity in enumerate(quantities, start=first):
        header_item = table.horizontalHeaderItem(column)
        assert header_item is not None  # set by setHorizontalHeaderLabels
        header_item.setToolTip(
            f"{quantity}: ratio of the ROI's sums ± 1 sigma (Poisson), p: dispersion test "
            "across frames (small p: the ROI varies more than counting explains)")
    table.setRowCount(len(rois))
    # one pass over the tidy table (a boolean filter per ROI would be quadratic: seconds
    # for a thousand ROIs, at every class change)
    entries = {(roi, quantity): (value, sigma, p) for roi, quantity, value, sigma, p in
               zip(statistics.roi.tolist(), statistics.quantity.astype(str).tolist(),
                   statistics.value.tolist(), statistics.sigma.tolist(),
                   statistics.p_value.tolist(), strict=True)}
    geometry = statistics.drop_duplicates("roi").set_index("roi")
    for row, roi in enumerate(rois):
        first_row = geometry.loc[roi]
        lines = [f"ROI {roi}: {int(first_row.n_pixels)} px, {first_row.area_um2:.4g} µm²"]
        if shown:
            assert classes is not None  # shown: classes is a non-empty dict
            lines[0] += f", class {classes.get(int(roi), 'none')}"
        for channel in channels:
            if (roi, channel) in entries:
                lines.append(f"{channel}: {entries[roi, channel][0]:.6g} counts")
        cells = []
        for quantity in quantities:
            value, sigma, p = entries[roi, quantity]
            lines.append(f"{quantity} = {value:.6g} ± {sigma:.3g}, p = {p:.3g}")
            cells.append((value, sigma, p))
        tooltip = "\n".join(lines)
        table.setItem(row, 0, _item(str(int(roi)), roi, tooltip))
        if shown:  # sorted by its text: a plain item
            assert classes is not None
            name = classes.get(int(roi))
            item = QTableWidgetItem("" if name is None else str(name))
            item.setToolTip(tooltip)
            table.setItem(row, 1, item)
        table.setItem(row, first - 1, _item(str(int(first_row.n_pixels)),
                                            first_row.n_pixels, tooltip))
        for column, (value, sigma, p) in enumerate(cells, start=first):
            item = _item(format_result(value, sigma, p), value, tooltip)
            item.setData(SIGMA_ROLE, float(sigma))
            item.setData(P_ROLE, float(p))
            table.setItem(row, column, item)
    _fit_columns(table, len(columns))
    table.setSortingEnabled(True)


def _fit_columns(table: QTableWidget, n_columns: int) -> None:
    """Every column but the last as wide as its widest text (without room for the sort
    arrow, which napari's 300 px dock cannot spare); the last one takes the rest."""
    header = table.horizontalHeader()
    assert header is not None  # every QTableWidget has one
    cells, titles = table.fontMetrics(), header.fontMetrics()
    for column in range(n_columns - 1):
        # fill_table set every cell and header item
        texts = [cast(QTableWidgetItem, table.item(row, column)).text()
                 for row in range(table.rowCount())]
        title = cast(QTableWidgetItem, table.horizontalHeaderItem(column)).text()
        width = max([titles.horizontalAdvance(title)]
                    + [cells.horizontalAdvance(text) for text in texts]) + 8
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        table.setColumnWidth(column, width)
    header.setSectionResizeMode(n_columns - 1, QHeaderView.ResizeMode.Stretch)


def table_rois(table: QTableWidget, rows) -> list[int]:
    """The ROI numbers of table rows."""
    return [int(cast(QTableWidgetItem, table.item(row, 0)).data(VALUE_ROLE)) for row in rows]


def select_rows(table: QTableWidget, rois, quiet: bool = False) -> None:
    """Select the rows of ``rois`` (whole rows), the others not; ``quiet``: without
    telling the table's listeners (a selection restored after the table was refilled)."""
    from qtpy.QtCore import QItemSelectionModel

    wanted = {int(roi) for roi in rois}
    previous = table.blockSignals(quiet) if quiet else None
    try:
        table.clearSelection()
        model, items = table.selectionModel(), table.model()
        assert model is not None and items is not None  # a QTableWidget has both
        flags = (QItemSelectionModel.SelectionFlag.Select
                 | QItemSelectionModel.SelectionFlag.Rows)
        for row, roi in enumerate(table_rois(table, range(table.rowCount()))):
            if roi in wanted:
                model.select(items.index(row, 0), flags)
    finally:
        if previous is not None:  # quiet
            table.blockSignals(previous)
