"""The ROI plots dock: a per-class strip plot of the ROIs' values with their errors, and
one quantity against another, per ROI (with error bars) or per pixel (a density).

Linked to the ROIs tab's table: selected rows are ringed in the per-ROI plots, and
clicking a point selects its row. The numbers are the tab's tables (the per-ROI table
with the rows ``normalise``, ``assimilation``, ... added, and ``compare_classes``'s
class means); per-pixel values come from :func:`~napari_nanosims.analysis.ratios.evaluate`.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ._roi_table import select_rows

#: The three plots the dock offers.
STRIP, SCATTER, DENSITY = "per class", "x vs y (ROIs)", "x vs y (pixels)"
DOCK_NAME = "ROI plots"
_NONE = "no class"


def _jitter(rois) -> np.ndarray:
    """Fixed horizontal offsets in [-0.2, 0.2) from the ROI numbers (golden-ratio steps:
    the same ROI always sits at the same place, neighbours apart)."""
    return (np.asarray(rois, float) * 0.6180339887 % 1.0 - 0.5) * 0.4


class RoiPlots(QWidget):
    """The plots of the ROIs tab ``tab``; :meth:`redraw` after the tables change,
    :meth:`highlight` after the selection changes."""

    # the quantity drop-downs shadow QWidget.x() and .y(), which this widget never calls
    x: QComboBox  # type: ignore[assignment]
    y: QComboBox  # type: ignore[assignment]

    def __init__(self, tab):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__()
        self.tab = tab
        self.kind, self.x, self.y = QComboBox(), QComboBox(), QComboBox()
        self.kind.addItems([STRIP, SCATTER, DENSITY])
        self.kind.setToolTip("per class: each ROI's value ± sigma by class, with the class "
                             "mean ± SE; x vs y: one ROI per point, or every ROI pixel "
                             "(a density)")
        self.x.setToolTip("quantity on the horizontal axis (x vs y)")
        self.y.setToolTip("quantity shown (per class) or on the vertical axis")
        self.canvas = FigureCanvasQTAgg(Figure(figsize=(6, 2.6)))
        self.canvas.setMinimumHeight(160)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        row = QHBoxLayout()  # one row: the plot keeps the dock's height
        for label, combo in (("plot", self.kind), ("x", self.x), ("y", self.y)):
            row.addWidget(QLabel(label))
            row.addWidget(combo, 1)
            combo.currentIndexChanged.connect(lambda _i=None: self.redraw())
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.note)
        self.highlighted: list[int] = []
        self._points = None  # (roi numbers, x, y) of the per-ROI plot shown
        self._ring = None
        self._pixels = None  # (measurement, accumulation) behind the density plot
        self.canvas.mpl_connect("pick_event", self._picked)
        self.redraw()

    # -- data -------------------------------------------------------------------------
    def _table(self):
        panel = self.tab.classes
        return panel.table if panel.table is not None else self.tab.statistics

    def _offer(self, table) -> None:
        quantities = [] if table is None else [
            q for q in dict.fromkeys(table["quantity"].astype(str))
            if not q.endswith(" enriched")]
        channels = set(self.tab._channel_labels())
        preferred = [q for q in quantities if q not in channels] or quantities
        for combo, default in ((self.x, 0), (self.y, 1 if len(preferred) > 1 else 0)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(quantities)
            if current in quantities:
                combo.setCurrentText(current)
            elif preferred:
                combo.setCurrentText(preferred[default])
            combo.blockSignals(False)
        if self.kind.currentText() == STRIP and self.tab.classes.quantity.value in \
                quantities and self.y.currentText() not in quantities:
            self.y.setCurrentText(self.tab.classes.quantity.value)

    @staticmethod
    def _per_roi(table, quantity):
        rows = table[table["quantity"] == quantity].drop_duplicates("roi")
        return rows.sort_values("roi")

    # -- drawing ----------------------------------------------------------------------
    def redraw(self) -> None:
        """Draw the chosen plot from the tab's current tables."""
        table = self._table()
        self._offer(table)
        figure = self.canvas.figure
        figure.clear()
        axes = figure.add_subplot(111)
        self._points, self._ring, self.note_text = None, None, ""
        if table is None or not len(table) or not self.y.currentText():
            axes.text(0.5, 0.5, "measure ROIs in the ROIs tab", ha="center", va="center",
                      transform=axes.transAxes)
        elif self.kind.currentText() == STRIP:
            self._strip(axes, table)
        elif self.kind.currentText() == SCATTER:
            self._scatter(axes, table)
        else:
            self._density(axes)
        self.note.setText(self.note_text)
        figure.tight_layout()
        self.highlight(self.highlighted, draw=False)
        self.canvas.draw_idle()

    def _strip(self, axes, table) -> None:
        quantity = self.y.currentText()
        rows = self._per_roi(table, quantity)
        names = (rows["class"].map(lambda n: _NONE if n is None or n != n else str(n))
                 if "class" in rows.columns else np.full(len(rows), _NONE))
        order = sorted(set(names) - {_NONE}) + ([_NONE] if _NONE in set(names) else [])
        position = {name: i for i, name in enumerate(order)}
        x = np.array([position[n] for n in names], float) + _jitter(rows["roi"])
        y = rows["value"].to_numpy(float)
        axes.errorbar(x, y, yerr=rows["sigma"].to_numpy(float), fmt="none", ecolor="0.6",
                      elinewidth=0.8, capsize=0)
        axes.scatter(x, y, s=14, color="tab:blue", picker=True, pickradius=5, zorder=3)
        class_table = self.tab.classes.class_table
        if class_table is not None:  # compare_classes's means ± SE, never recomputed
            means = class_table[(class_table["quantity"] == quantity)
                                & (class_table["test"] == "summary")]
            for _, row in means.iterrows():
                at = position.get(str(row["class"]))
                if at is not None:
                    axes.errorbar([at + 0.32], [row["mean"]], yerr=[row["se"]], fmt="_",
                                  color="black", ms=12, capsize=3, zorder=4)
        axes.set_xticks(range(len(order)), order)
        axes.set_xlim(-0.5, len(order) - 0.5 + 0.2)
        axes.set_ylabel(quantity, fontsize=8)
        self._points = (rows["roi"].to_numpy(int), x, y)
        self.note_text = "ROIs ± 1 sigma; black: class mean ± SE (compare_classes)"

    def _scatter(self, axes, table) -> None:
        qx, qy = self.x.currentText(), self.y.currentText()
        rx = self._per_roi(table, qx).set_index("roi")
        ry = self._per_roi(table, qy).set_index("roi")
        rois = rx.index.intersection(ry.index)
        x, y = rx.loc[rois, "value"].to_numpy(float), ry.loc[rois, "value"].to_numpy(float)
        axes.errorbar(x, y, xerr=rx.loc[rois, "sigma"].to_numpy(float),
                      yerr=ry.loc[rois, "sigma"].to_numpy(float), fmt="none", ecolor="0.6",
                      elinewidth=0.8)
        axes.scatter(x, y, s=14, color="tab:blue", picker=True, pickradius=5, zorder=3)
        axes.set_xlabel(qx, fontsize=8)
        axes.set_ylabel(qy, fontsize=8)
        self._points = (np.asarray(rois, int), x, y)
        self.note_text = "one point per ROI ± 1 sigma; click a point to select its row"

    def _density(self, axes) -> None:
        from ...analysis.accumulate import accumulate
        from ...analysis.ratios import evaluate

        tab = self.tab
        labels = tab._labels_image
        if labels is None:
            return
        if self._pixels is None or self._pixels[0] is not tab._measured:
            acquisition = tab._source()
            if acquisition is None:
                self.note_text = "the file's layers are gone"
                return
            self._pixels = (tab._measured, accumulate(acquisition))
        inside = labels > 0
        try:
            x, y = (evaluate(self._pixels[1], q).value[inside]
                    for q in (self.x.currentText(), self.y.currentText()))
        except ValueError as exc:  # a derived row (excess, k, ...) is not a pixel value
            self.note_text = f"per pixel: expressions and masses only ({exc})"
            return
        finite = np.isfinite(x) & np.isfinite(y)
        if finite.any():
            shown = axes.hexbin(x[finite], y[finite], gridsize=40, mincnt=1, bins="log",
                                cmap="viridis")
            self.canvas.figure.colorbar(shown, ax=axes, label="pixels")
        axes.set_xlabel(self.x.currentText(), fontsize=8)
        axes.set_ylabel(self.y.currentText(), fontsize=8)
        self.note_text = (f"{int(finite.sum())} ROI pixels (pixels with < 10 counts "
                          "left out, as in the Ratio tab)")

    # -- selection --------------------------------------------------------------------
    def highlight(self, rois, draw: bool = True) -> None:
        """Ring the points of ``rois`` (the table's selected rows)."""
        self.highlighted = [int(roi) for roi in rois]
        if self._ring is not None:
            self._ring.remove()
            self._ring = None
        if self._points is not None and self.canvas.figure.axes:
            numbers, x, y = self._points
            chosen = np.isin(numbers, self.highlighted)
            self._ring = self.canvas.figure.axes[0].scatter(
                x[chosen], y[chosen], s=90, facecolors="none", edgecolors="red",
                linewidths=1.5, zorder=5)
        if draw:
            self.canvas.draw_idle()

    def _picked(self, event) -> None:
        """A click on a point selects its ROI's row in the table (the nearest point)."""
        if self._points is None or not len(getattr(event, "ind", [])):
            return
        numbers, x, y = self._points
        candidates = np.asarray(event.ind)
        axes = self.canvas.figure.axes[0]
        shown = axes.transData.transform(np.column_stack([x[candidates], y[candidates]]))
        mouse = np.array([event.mouseevent.x, event.mouseevent.y])
        roi = int(numbers[candidates[np.argmin(((shown - mouse) ** 2).sum(axis=1))]])
        select_rows(self.tab.table, [roi])


def show_plots(tab) -> RoiPlots:
    """Open (or bring back) the ROI plots dock of ``tab``, at the bottom of the window."""
    plots = getattr(tab, "plots", None)
    if plots is not None:
        try:
            plots.redraw()
            (plots.parent() or plots).show()
            return plots
        except RuntimeError:  # its dock was closed and deleted
            tab.plots = None
    plots = RoiPlots(tab)
    tab._viewer.window.add_dock_widget(plots, name=DOCK_NAME, area="bottom")
    tab.plots = plots
    return plots
