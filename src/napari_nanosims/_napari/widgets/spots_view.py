"""The "NanoSIMS spots" dock: isotope (spot) files as a table of counts per cycle, plots
of counts and of a ratio per cycle, and the ratio's summary (``nanosims spots``'s numbers).

The spot reader (``_napari/spots.py``) docks it and hands it the files it read; from the
Plugins menu it opens files itself. Everything it shows comes from ``_napari/spots.py``
and ``analysis/spots.py``.
"""

from __future__ import annotations

import os

import napari.viewer
import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...analysis.spots import SpotRatio, ions
from ..spots import cycle_table, default_ratio, open_spot_files, spot_summary, summary_text

#: The dock stays usable at this width (px): controls stack, the plots shrink.
SPOTS_WIDTH_PX = 290


class _FrameModel(QAbstractTableModel):
    """A read-only pandas DataFrame behind a QTableView (thousands of cycles stay fast:
    cells are formatted when shown, never all at once)."""

    def __init__(self, frame=None):
        super().__init__()
        self._columns: list[str] = []
        self._values = np.zeros((0, 0))
        if frame is not None:
            self.set_frame(frame)

    def set_frame(self, frame) -> None:
        self.beginResetModel()
        self._columns = [str(c) for c in frame.columns]
        self._values = frame.to_numpy(dtype=np.float64)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):  # noqa: B008, N802 - Qt's signature
        return 0 if parent.isValid() else self._values.shape[0]

    def columnCount(self, parent=QModelIndex()):  # noqa: B008, N802 - Qt's signature
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        value = float(self._values[index.row(), index.column()])
        # Counts of electron multipliers are whole numbers; a cup's reading is not.
        return f"{value:.0f}" if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._columns[section] if section < len(self._columns) else None
        return None


class SpotsView(QWidget):
    """Spot files: a file chooser, a ratio chooser (two masses) with its summary (ratio
    ± Poisson error, standard error of the cycles, MSWD, outlier cycles), plots of counts
    and of the ratio per cycle, and the counts of every cycle as a table."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self.measurements: dict[str, object] = {}
        self.result: SpotRatio | None = None
        self.open_button = QPushButton("Open .is files…")
        self.files = QComboBox()
        self.numerator = QComboBox()
        self.denominator = QComboBox()
        self.dead_time = QCheckBox("dead time corrected")
        self.dead_time.setChecked(True)
        self.dead_time.setToolTip("Correct the electron multipliers' dead time per cycle "
                                  "before the ratio (as `nanosims spots` does)")
        self.exclude = QCheckBox("exclude outliers")
        self.exclude.setToolTip("Compute the ratio without the cycles the outlier rule "
                                "flags (Bonferroni threshold: a 5% chance per file of "
                                "flagging a cycle for counting noise alone)")
        self.summary = QLabel("Open or drop .is files.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model = _FrameModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        rows = self.table.verticalHeader()
        assert rows is not None  # every QTableView has one
        rows.setVisible(False)
        self.table.setMinimumHeight(140)
        self.table.setToolTip("Counts per cycle as Cameca's text export lists them; a "
                              "Faraday cup's column (FC) is the cup's reading, not ions")
        self.canvas = self._make_canvas()
        for combo in (self.files, self.numerator, self.denominator):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
            combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._layout()
        self.open_button.clicked.connect(self._choose_files)
        self.files.currentIndexChanged.connect(self._file_changed)
        for widget in (self.numerator, self.denominator):
            widget.currentIndexChanged.connect(self.update_ratio)
        for box in (self.dead_time, self.exclude):
            box.toggled.connect(self.update_ratio)

    def _make_canvas(self):
        try:
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            from matplotlib.figure import Figure
        except ImportError:  # matplotlib is optional: the table and summary still work
            return None
        canvas = FigureCanvasQTAgg(Figure(figsize=(2.8, 3.4), layout="constrained"))
        canvas.setMinimumSize(120, 300)
        canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        return canvas

    def _layout(self) -> None:
        ratio_row = QHBoxLayout()
        ratio_row.addWidget(self.numerator)
        ratio_row.addWidget(QLabel("/"))
        ratio_row.addWidget(self.denominator)
        layout = QVBoxLayout(self)
        layout.addWidget(self.open_button)
        layout.addWidget(QLabel("file"))
        layout.addWidget(self.files)
        layout.addWidget(QLabel("ratio"))
        layout.addLayout(ratio_row)
        layout.addWidget(self.dead_time)
        layout.addWidget(self.exclude)
        layout.addWidget(self.summary)
        if self.canvas is not None:
            layout.addWidget(self.canvas, stretch=2)
        else:
            layout.addWidget(QLabel("Install matplotlib to see the plots."))
        layout.addWidget(self.table, stretch=1)
        self.setMinimumWidth(SPOTS_WIDTH_PX - 60)

    # -- files ----------------------------------------------------------------------------
    def add_measurements(self, measurements) -> None:
        """Show these measurements (a file opened again replaces its earlier reading) and
        select the last one."""
        for measurement in measurements:
            self.measurements[measurement.path] = measurement
            index = self.files.findData(measurement.path)
            if index < 0:
                self.files.addItem(measurement.name, measurement.path)
                index = self.files.count() - 1
                self.files.setItemData(index, measurement.path,
                                       Qt.ItemDataRole.ToolTipRole)
        if measurements:
            index = self.files.findData(measurements[-1].path)
            if index == self.files.currentIndex():
                self._file_changed()
            else:
                self.files.setCurrentIndex(index)

    def open_files(self, paths) -> list[str]:
        """Read ``.is`` files and show them; return one line per problem (also shown as
        one notification)."""
        measurements, problems = open_spot_files([os.fspath(p) for p in paths])
        self.add_measurements(measurements)
        if problems:
            from napari.utils.notifications import show_error, show_warning

            (show_warning if measurements else show_error)("\n".join(problems))
        return problems

    def _choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open isotope (spot) files", "",
                                                "Cameca isotope files (*.is *.IS)")
        if paths:
            self.open_files(paths)

    @property
    def measurement(self):
        """The measurement shown (None before any file)."""
        return self.measurements.get(self.files.currentData())

    def _file_changed(self, _index=None) -> None:
        measurement = self.measurement
        if measurement is None:
            return
        wanted = (self.numerator.currentText(), self.denominator.currentText())
        if not all(label in measurement.labels for label in wanted):
            wanted = default_ratio(measurement)
        for combo, label in zip((self.numerator, self.denominator), wanted, strict=True):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(list(measurement.labels))
            combo.setCurrentIndex(measurement.labels.index(label))
            combo.blockSignals(False)
        self.model.set_frame(cycle_table(measurement))
        self.table.resizeColumnsToContents()
        self.update_ratio()

    # -- ratio ----------------------------------------------------------------------------
    def set_ratio(self, numerator: str, denominator: str) -> None:
        """Choose the ratio's masses by label."""
        self.numerator.setCurrentText(numerator)
        self.denominator.setCurrentText(denominator)
        self.update_ratio()

    def update_ratio(self, _value=None) -> None:
        """Recompute the summary and redraw the plots for the chosen ratio."""
        measurement = self.measurement
        if measurement is None:
            return
        self.result = None
        if measurement.n_cycles and self.numerator.currentText():
            try:
                self.result = spot_summary(
                    measurement, self.numerator.currentText(),
                    self.denominator.currentText(), dead_time=self.dead_time.isChecked(),
                    exclude_outliers=self.exclude.isChecked())
            except (ValueError, KeyError) as exc:
                self.summary.setText(str(exc.args[0] if exc.args else exc))
                self._draw(measurement)
                return
        self.summary.setText(summary_text(measurement, self.result))
        self._draw(measurement)

    def _draw(self, measurement) -> None:
        if self.canvas is None:
            return
        from matplotlib.ticker import NullFormatter

        figure = self.canvas.figure
        figure.clear()
        counts_axes, ratio_axes = figure.subplots(2, 1, sharex=True)
        cycles = np.arange(1, measurement.n_cycles + 1)
        if measurement.n_cycles:
            # Ions, so that a Faraday cup's reading and a multiplier's counts compare.
            per_cycle = ions(measurement)
            for k, label in enumerate(measurement.labels):
                values = np.where(per_cycle[:, k] > 0, per_cycle[:, k],
                                  np.nan)  # a log axis cannot show zero
                counts_axes.plot(cycles, values, lw=0.8, label=label)
            counts_axes.set_yscale("log")
            counts_axes.yaxis.set_minor_formatter(NullFormatter())  # crowded when narrow
            counts_axes.legend(fontsize=6, ncols=2, loc="best")
        counts_axes.set_ylabel("ions / cycle", fontsize=7)
        result = self.result
        if result is not None:
            flagged = result.outliers
            ratio_axes.plot(cycles[~flagged], result.cycle_ratios[~flagged], ".", ms=2)
            ratio_axes.plot(cycles[flagged], result.cycle_ratios[flagged], "x", color="red",
                            ms=5, label="outlier")
            ratio_axes.axhline(result.ratio, color="black", lw=0.8)
            if flagged.any():
                ratio_axes.legend(fontsize=6, loc="best")
            ratio_axes.set_ylabel(result.expression, fontsize=7)
        ratio_axes.set_xlabel("cycle", fontsize=7)
        for axes in (counts_axes, ratio_axes):
            axes.tick_params(labelsize=6)
        figure.suptitle(measurement.name, fontsize=7)
        self.canvas.draw_idle()
