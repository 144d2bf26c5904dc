"""The ROIs tab's classes: give ROIs classes (selected rows, a painted class layer, another
image's labels, a rule), mark a control and a standard, rate inputs, the per-class summary
and the export of both tables.

Every number comes from the library: :func:`with_classes`, :func:`normalise`,
:func:`calibrate`, :func:`assimilation` and :func:`compare_classes` on the measured ROI
table (:func:`derive`); this module only chooses their inputs and shows their results.
"""

from __future__ import annotations

import contextlib

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, LineEdit, PushButton
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ...analysis.classes import classes_from_labels, classes_from_rule, parse_class_list
from ...steps.classes import ASSIMILATION, CALIBRATE, CLASSIFY, NORMALISE
from ._class_summary import check_name, derive, natural_of, summary_text
from ._common import watch_edits
from ._controls import CONTROL_MIN_WIDTH_PX, control_for, control_value
from ._regions import roi_labels
from ._roi_export import export_tables, sidecar
from ._roi_table import select_rows, table_rois

#: metadata key of the class layers this tab makes (the file they belong to)
CLASS_KEY = "nanosims_classes"
_RATE_NAMES = ("natural", "substrate", "hours", "dilution")


def _form(rows) -> QWidget:
    """A form whose long labels go above their field (a ~290 px panel)."""
    widget = QWidget()
    form = QFormLayout(widget)
    form.setContentsMargins(0, 0, 0, 0)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    for row in rows:
        if isinstance(row, PushButton):
            form.addRow(row.native)
            continue
        label = QLabel(row.label)
        label.setToolTip(row.tooltip or "")
        row.native.setMinimumWidth(CONTROL_MIN_WIDTH_PX)
        form.addRow(label, row.native)
    return widget


class ClassPanel:
    """Classes of the ROIs tab ``tab`` (a :class:`~.rois.RoiWidget`): the widgets under
    the table and on the "classes" page, the derived tables and the export."""

    def __init__(self, tab):
        self.tab = tab
        self.assigned: dict[int, str] = {}  # ROI -> class, kept across measurements
        self._from_layer: set[int] = set()  # ROIs whose class came from the class layer
        self.table = None  # per ROI: classes and the rows normalise, ... added
        self.class_table = None  # compare_classes of the quantity and its added rows
        self.steps, self.notes = [], []
        self._measured_key = None  # (file, ROI layer) the classes belong to
        self.class_name = QComboBox()
        self.class_name.setEditable(True)
        self.class_name.lineEdit().setPlaceholderText("class")
        self.class_name.setToolTip("the class the selected rows get (type a new one); "
                                   "empty: no class")
        self.class_name.setMinimumWidth(CONTROL_MIN_WIDTH_PX)
        self.set_button = QPushButton("Set class")
        self.set_button.setToolTip("give the selected rows of the table this class")
        normal, rates = NORMALISE.parameter, ASSIMILATION.parameter
        self.quantity = control_for(normal("quantity"), choices=self._quantities,
                                    nullable=True)
        self.control = control_for(normal("control"), choices=self._class_choices,
                                   nullable=True, note="Empty: no excess")
        self.standard = control_for(CALIBRATE.parameter("standard"),
                                    choices=self._class_choices, nullable=True,
                                    note="Empty: no calibration")
        self.true_value = control_for(CALIBRATE.parameter("true_value"))
        self.rates = CheckBox(text="rates (assimilation)", value=False,
                              tooltip="excess enrichment, net assimilation and growth "
                                      "rate of the quantity (an isotope fraction)")
        self.natural, self.substrate, self.hours, self.dilution = (
            control_for(rates(name)) for name in _RATE_NAMES)
        for control in (self.natural, self.substrate, self.true_value):
            control.native.setDecimals(7)  # 0.0036630: natural 15N as a fraction
        self.class_layer = ComboBox(label="class layer", choices=self._labels_layers,
                                    nullable=True, tooltip="a Labels layer whose values "
                                    "are classes (painted, or FISH/EM labels): each ROI "
                                    "takes the value covering most of it")
        self.new_layer_button = PushButton(text="New class layer")
        self.new_layer_button.tooltip = ("a Labels layer on the image to paint classes: "
                                         "value 1, 2, ... = class 1, 2, ...")
        self.names = LineEdit(label="names", tooltip="names of the class layer's values: "
                              "'1: control; 2: cells' (unnamed values: 'class <value>')")
        self.min_overlap = control_for(CLASSIFY.parameter("min_overlap"))
        self.layer_button = PushButton(text="Classes from layer")
        self.rule = control_for(CLASSIFY.parameter("rule"))
        self.rule_class = control_for(CLASSIFY.parameter("rule_class"))
        self.otherwise = control_for(CLASSIFY.parameter("otherwise"))
        self.rule_button = PushButton(text="Apply rule")
        self.summary = QLabel("classes: select rows and Set class, paint a class layer "
                              "or apply a rule")
        self.summary.setWordWrap(True)
        self.page = self._page()
        self._watched = None
        self._debounce = QTimer()
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(lambda: self.apply_layer())
        self.set_button.clicked.connect(lambda _checked=False: self.set_class())
        self.new_layer_button.changed.connect(lambda _v=None: self.new_class_layer())
        self.layer_button.changed.connect(lambda _v=None: self.apply_layer())
        self.rule_button.changed.connect(lambda _v=None: self.apply_rule())
        self.class_layer.changed.connect(self._watch_layer)
        self.rates.changed.connect(self._rates_toggled)
        for control in (self.quantity, self.control, self.standard, self.true_value,
                        self.natural, self.substrate, self.hours, self.dilution):
            control.changed.connect(lambda _v=None: self.refresh())

    # -- widgets ------------------------------------------------------------------------
    def table_page(self, table) -> QWidget:
        """The ROI table with the class box and Set class under it."""
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(table)
        row = QHBoxLayout()
        row.addWidget(self.class_name, 1)
        row.addWidget(self.set_button)
        layout.addLayout(row)
        return page

    def _page(self) -> QScrollArea:
        from qtpy.QtCore import Qt

        inner = QWidget()
        layout = QVBoxLayout(inner)
        self.rates_form = _form([self.natural, self.substrate, self.hours, self.dilution])
        self.rates_form.setVisible(False)
        for part in (self.summary, _form([self.quantity, self.control, self.standard,
                                          self.true_value]),
                     self.rates.native, self.rates_form, _heading("from a layer"),
                     _form([self.class_layer, self.new_layer_button, self.names,
                            self.min_overlap, self.layer_button]),
                     _heading("by a rule"),
                     _form([self.rule, self.rule_class, self.otherwise, self.rule_button])):
            layout.addWidget(part)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        return scroll

    def _quantities(self, _widget=None):
        stats = getattr(self.tab, "statistics", None)  # None while the tab is built
        if stats is None or not len(stats):
            return []
        channels = set(self.tab._channel_labels())
        return [q for q in dict.fromkeys(stats["quantity"].astype(str)) if q not in channels]

    def _class_choices(self, _widget=None):
        return sorted({str(name) for name in self.assigned.values()})

    def _labels_layers(self, _widget=None):
        return [(layer.name, layer) for layer in self.tab._viewer.layers
                if layer.__class__.__name__ == "Labels"]

    def layers_changed(self) -> None:
        """The viewer's layers changed: re-read the class layer choices."""
        self.class_layer.reset_choices()

    def _refresh_choices(self) -> None:
        for combo in (self.quantity, self.control, self.standard):
            combo.reset_choices()  # keeps the value while it is offered
        if self.quantity.value is None and self.quantity.choices[1:]:
            self.quantity.value = self.quantity.choices[1]
        names = self._class_choices()
        text = self.class_name.currentText()
        self.class_name.clear()
        self.class_name.addItems(names)
        self.class_name.setCurrentText(text)

    def _rates_toggled(self, on) -> None:
        self.rates_form.setVisible(bool(on))
        natural = natural_of(self.quantity.value) if self.quantity.value else None
        if on and natural is not None and self.natural.value == 0:
            self.natural.value = natural  # refreshes
        else:
            self.refresh()

    def rate_inputs(self):
        """assimilation's keyword arguments from the rate boxes (None: no rates)."""
        if not self.rates.value:
            return None
        values = {name: control_value(ASSIMILATION.parameter(name), getattr(self, name))
                  for name in _RATE_NAMES}
        if values["natural"] is None or values["substrate"] is None:
            return None
        return values

    # -- assigning classes -----------------------------------------------------------------
    def set_class(self, name=None, rois=None) -> None:
        """Give the selected rows (or ``rois``) the class in the box (or ``name``);
        an empty name removes their class."""
        from napari.utils.notifications import show_warning

        name = (self.class_name.currentText() if name is None else str(name)).strip()
        if rois is None:
            rows = sorted({index.row() for index in self.tab.table.selectedIndexes()})
            rois = table_rois(self.tab.table, rows)
        if not rois:
            show_warning("Select rows of the ROI table first.")
            return
        try:
            check_name(name)
        except ValueError as exc:
            show_warning(str(exc))
            return
        for roi in rois:
            if name:
                self.assigned[int(roi)] = name
            else:
                self.assigned.pop(int(roi), None)
            self._from_layer.discard(int(roi))
        self.refresh(keep_selection=rois)

    def apply_rule(self) -> None:
        """Classes from the rule (``classes_from_rule``) on the current table."""
        from napari.utils.notifications import show_warning

        table = self.table if self.table is not None else self.tab.statistics
        if table is None or not self.rule.value.strip():
            show_warning("Measure the ROIs and write a rule such as '12C15N/12C14N > 0.01'.")
            return
        try:
            found = classes_from_rule(table, self.rule.value,
                                      name=self.rule_class.value.strip() or None,
                                      otherwise=self.otherwise.value.strip() or None)
            for name in set(found.values()):
                check_name(str(name))
        except ValueError as exc:
            show_warning(str(exc))
            self.summary.setText(str(exc))
            return
        self.assigned.update({roi: str(name) for roi, name in found.items()})
        self._from_layer -= set(found)
        self.refresh()

    def new_class_layer(self):
        """An empty Labels layer on the file's image to paint classes with (value 1
        selected, paint mode), chosen as the class layer. Returns it."""
        from napari.utils.notifications import show_warning

        tab = self.tab
        image = tab._image_layer() if tab.file.value is not None else None
        if image is None:
            show_warning("Open a NanoSIMS .im file first (no file chosen).")
            return None
        shape = tuple(image.data.shape)[-2:]
        stem = image.name.split(" · ")[-1]
        layer = tab._viewer.add_labels(np.zeros(shape, np.int32), name=f"classes · {stem}",
                                       metadata={CLASS_KEY: tab.file.value},
                                       **tab._geometry())
        tab._viewer.layers.selection.active = layer
        layer.brush_size = max(3, min(shape) // 40)
        layer.selected_label = 1
        layer.mode = "paint"
        self.class_layer.reset_choices()
        self.class_layer.value = layer
        self.summary.setText("paint over ROIs: value 1, 2, ... is class 1, 2, ...; name "
                             "the values in 'names' (1: control; 2: cells)")
        return layer

    def _watch_layer(self, layer=None) -> None:
        """Re-classify (debounced) when the class layer is painted or changed."""
        self._watched = watch_edits(self._watched, layer, self._schedule)

    def _schedule(self, _event=None) -> None:
        with contextlib.suppress(RuntimeError):  # the widget is gone
            self._debounce.start()

    def apply_layer(self, refresh: bool = True) -> None:
        """Classes from the class layer: each ROI takes the value covering at least
        ``min overlap`` of it (``classes_from_labels``), named by ``names``."""
        from napari.utils.notifications import show_warning

        tab, layer = self.tab, self.class_layer.value
        if layer is None or tab._labels_image is None or tab._closed:
            return
        labels = tab._labels_image
        try:
            names = parse_class_list(self.names.value)
            for name in names.values():
                check_name(name)
            try:
                image, _ = roi_labels(layer, tab._image_layer(), labels.shape)
            except ValueError as exc:
                if "no ROI on the image" not in str(exc):
                    raise
                image = np.zeros(labels.shape, np.int32)  # nothing painted yet
            found = classes_from_labels(labels, image, self.min_overlap.value)
        except ValueError as exc:
            show_warning(str(exc))
            return
        for roi in self._from_layer - set(found):  # paint erased: the class goes too
            self.assigned.pop(roi, None)
        self.assigned.update({roi: names.get(value, f"class {value}")
                              for roi, value in found.items()})
        self._from_layer = set(found)
        if refresh:
            self.refresh()

    # -- the tables -----------------------------------------------------------------------
    def measured(self) -> None:
        """The tab measured a table: keep the classes of the ROIs that are still there
        (none when the file or the ROI layer is another one)."""
        key = (self.tab._measured["file"], id(self.tab.roi_layer.value))
        if key != self._measured_key:  # another file or ROI layer: its own classes
            self.assigned, self._from_layer, self._measured_key = {}, set(), key
            # an imported ROI file brings its classes (OpenMIMS groups, mask colours)
            layer = self.tab.roi_layer.value
            imported = getattr(layer, "metadata", {}).get("nanosims_roi_classes") or {}
            self.assigned.update({int(roi): str(name) for roi, name in imported.items()})
        rois = {int(roi) for roi in self.tab.statistics["roi"].unique()}
        self.assigned = {roi: name for roi, name in self.assigned.items() if roi in rois}
        self._from_layer &= rois
        self.quantity.reset_choices()
        if self.class_layer.value is not None:
            self.apply_layer(refresh=False)
        self.refresh()

    def refresh(self, keep_selection=None) -> None:
        """Derive the tables (:func:`derive`), fill the ROI table and the summary."""
        tab = self.tab
        if tab.statistics is None or tab._closed:
            return
        self._refresh_choices()
        control = self.control.value if self.control.value in self._class_choices() else None
        standard = self.standard.value if self.standard.value in self._class_choices() \
            else None
        true_value = control_value(CALIBRATE.parameter("true_value"), self.true_value)
        rates = self.rate_inputs()
        quantity = self.quantity.value
        self.table, self.class_table, self.steps, self.notes = derive(
            tab.statistics, self.assigned, quantity, control=control, standard=standard,
            true_value=true_value, rates=rates)
        if self.rates.value and rates is None:
            self.notes.append("rates: set natural and substrate")
        if standard is not None and true_value is None:
            self.notes.append("calibrate: set the standard's true value")
        text = summary_text(self.table, self.class_table, quantity) or (
            "classes: select rows and Set class, paint a class layer or apply a rule")
        self.summary.setText("\n".join([text] + self.notes))
        selected = keep_selection or table_rois(
            tab.table, sorted({i.row() for i in tab.table.selectedIndexes()}))
        tab._fill_table(tab.statistics)
        if selected:
            select_rows(tab.table, selected, quiet=True)
        if getattr(tab, "plots", None) is not None:
            tab.plots.redraw()

    def sidecar(self) -> dict:
        """What produced the exported tables (the JSON beside them)."""
        return sidecar(self)

    def export(self, path=None, overwrite: bool = False):
        """Write the per-ROI table, the per-class table and the sidecar (see
        :func:`._roi_export.export_tables`)."""
        return export_tables(self, path, overwrite)


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label
