"""The "ROIs" tab: find or draw cells, measure ratios of sums per ROI, profiles, classes
(roi_classes.py), plots (roi_plots.py), export."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import napari.viewer
import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QTabWidget

from ...analysis.accumulate import accumulate
from ...analysis.rois import depth_profile, roi_table, segment_rois
from ...steps.analysis import ROI_TABLE, SEGMENT
from ...steps.frames import default_alignment_channel
from ...steps.progress import Progress
from ..lookups import ROI_KEY
from ._base import FileWidget
from ._common import (
    KIND_ALIGNED,
    KIND_CLEANED,
    KIND_CORRECTED,
    RESULTS,
    acquisition_from_layers,
    channel_layers,
    nanosims_info,
    source_layers,
    watch_edits,
)
from ._controls import control_for, control_value
from ._regions import roi_labels
from ._roi_files import export_roi_file, import_roi_file
from ._roi_table import fill_table, make_table, table_rois
from .roi_classes import ClassPanel
from .roi_plots import show_plots

if TYPE_CHECKING:  # for annotations; matplotlib is imported when the plot is first drawn
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

SOURCE_KINDS = (KIND_ALIGNED, KIND_CORRECTED, KIND_CLEANED)



class RoiWidget(FileWidget):
    """ROIs of one file: Find cells, a sortable table of ratios of sums with errors and
    dispersion p-values, classes and their summary, a depth profile of the selected ROIs,
    the plots dock, and Export tables."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, "Measure ROIs")
        self.roi_layer = ComboBox(label="ROIs from", choices=self._roi_layer_choices,
                                  nullable=True,
                                  tooltip="a Labels layer (paint ROIs) or a Shapes layer")
        self.new_button = PushButton(text="New ROI layer")
        self.new_button.tooltip = ("a Labels layer on the image's pixels (µm), selected in "
                                   "paint mode with label 1: paint ROIs, one label each")
        segment = SEGMENT.parameter
        self.channel = control_for(segment("channel"), choices=self._channel_choices,
                                   nullable=True)
        self.method = control_for(segment("method"))
        self.smoothing = control_for(segment("smoothing_px"))
        self.min_area = control_for(segment("min_area_px"))
        self.split = control_for(segment("split_touching"))
        self.find_button = PushButton(text="Find cells")
        self.expressions = control_for(ROI_TABLE.parameter("expressions"))
        self.summary = Label(label="", value="")
        self.summary.native.setWordWrap(True)
        self.export_button = PushButton(text="Export tables")
        self.export_button.tooltip = ("the per-ROI table and, with classes, the per-class "
                                      "table (CSV, Parquet with pyarrow) and a JSON of what "
                                      "produced them")
        self.plots_button = PushButton(text="Plots")
        self.plots_button.tooltip = ("a dock of plots linked to the table: per class, and "
                                     "one quantity against another (ROIs or pixels)")
        self.plots = None
        self.table = make_table()
        self.table.setMinimumHeight(100)
        self.table.itemSelectionChanged.connect(self._row_selected)
        # The table and the selected ROIs' depth profile share the space under Run: at
        # napari's first-start height both at once would squeeze the controls away.
        self.result_tabs = QTabWidget()
        self.classes = ClassPanel(self)
        self.result_tabs.addTab(self.classes.table_page(self.table), "table")
        self.result_tabs.addTab(self.classes.page, "classes")
        self.import_rois_button = PushButton(text="Import ROIs...")
        self.import_rois_button.tooltip = ("an ImageJ/Fiji/OpenMIMS ROI set (.zip, .roi), "
                                           "a LANS cells.mat or a painted mask, as an ROI "
                                           "layer with its classes")
        self.export_rois_button = PushButton(text="Export ROIs...")
        self.export_rois_button.tooltip = "the measured ROIs as an ImageJ .zip or LANS .mat"
        buttons = Container(layout="horizontal", labels=False,
                            widgets=[self.export_button, self.plots_button])
        buttons.margins = (0, 0, 0, 0)
        files = Container(layout="horizontal", labels=False,
                          widgets=[self.import_rois_button, self.export_rois_button])
        files.margins = (0, 0, 0, 0)
        self._lay_out(controls=[self.file, self.new_button, self.roi_layer, self.channel,
                                self.method, self.smoothing, self.min_area, self.split,
                                self.find_button, self.expressions],
                      results=[self.summary, self.result_tabs, buttons, files])
        self._figure_canvas: FigureCanvasQTAgg | None = None
        self.statistics = None
        self.profile = None
        self._measured = None  # file, history and layers of the last measurement
        self._labels_image = None
        self._debounce = QTimer(self.native)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(500)
        self._debounce.timeout.connect(self.run)
        self._watched = None
        self.find_button.changed.connect(self.find_cells)
        self.new_button.changed.connect(lambda _v=None: self.new_roi_layer())
        self.export_button.changed.connect(lambda _v=None: self.export_table())
        self.plots_button.changed.connect(lambda _v=None: show_plots(self))
        self.import_rois_button.changed.connect(lambda _v=None: import_roi_file(self))
        self.export_rois_button.changed.connect(lambda _v=None: export_roi_file(self))
        self.roi_layer.changed.connect(self._watch_roi_layer)
        self._connect()

    # -- inputs -------------------------------------------------------------------------
    def _roi_layer_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers
                if layer.__class__.__name__ in ("Labels", "Shapes")]

    def _channel_choices(self, _widget=None):
        if not hasattr(self, "file") or self.file.value is None:
            return []
        return [(layer.metadata["nanosims"]["label"], index) for index, layer
                in channel_layers(self._viewer, self.file.value).items()]

    def _files_refreshed(self, previous) -> None:
        self.roi_layer.reset_choices()
        self.classes.layers_changed()
        current = self.channel.value
        self.channel.reset_choices()
        if current is None and self.file.value is not None:
            acquisition = acquisition_from_layers(self._viewer, self.file.value)
            if acquisition is not None:
                self.channel.value = acquisition.channel(
                    default_alignment_channel(acquisition)).index

    def _watch_roi_layer(self, layer=None) -> None:
        """Re-measure (debounced) when the ROIs are painted or changed."""
        self._watched = watch_edits(self._watched, layer, self._schedule)
        if layer is not None:
            self._schedule()  # a layer chosen: measure it

    def _schedule(self, _event=None) -> None:
        if not self._closed:
            try:
                self._debounce.start()
            except RuntimeError:
                self._closed = True

    def _source(self):
        """The file's acquisition from its aligned (else corrected, cleaned, raw) layers:
        the tab's own result when those layers are intact, so that ROI sums follow the
        translations back to the unshifted frames and the dispersion test uses raw counts
        exactly as :func:`roi_table` does on the same steps."""
        return acquisition_from_layers(self._viewer, self.file.value, SOURCE_KINDS)

    def _source_note(self, acquisition) -> str:
        """Which layers an acquisition stands for, and whether they are a tab's result."""
        layers = source_layers(self._viewer, self.file.value, SOURCE_KINDS)
        ions = [layer for index, layer in layers.items() if index != acquisition.se_index]
        kinds = " and ".join(dict.fromkeys(cast(dict, nanosims_info(layer))["kind"]
                                           for layer in ions or layers.values()))
        if RESULTS.holds(acquisition) or not acquisition.history:
            return f"on the {kinds} layers"
        return (f"on the {kinds} layers' pixels (the result behind them is gone: layers "
                "edited, replaced or mixed)")

    def _image_layer(self):
        """The file's layer the ROIs are measured on (aligned, else corrected, cleaned,
        raw): its scale and translation map µm to the pixels of the measurement."""
        layers = source_layers(self._viewer, self.file.value, SOURCE_KINDS)
        return layers[min(layers)] if layers else None

    def _geometry(self) -> dict:
        """2-D layer keyword arguments of the file's image: scale, translate, units."""
        image = self._image_layer()
        return {"scale": tuple(image.scale)[-2:], "translate": tuple(image.translate)[-2:],
                "units": tuple(str(u) for u in image.units)[-2:],
                "axis_labels": tuple(image.axis_labels)[-2:]}

    def new_roi_layer(self):
        """Add an empty 2-D ROI Labels layer on the file's image (its pixels, scale and
        units), select it and put it in paint mode with label 1. Returns the layer."""
        from napari.utils.notifications import show_warning

        if self.file.value is None or self._image_layer() is None:
            show_warning("Open a NanoSIMS .im file first (no file chosen).")
            return None
        image = self._image_layer()
        shape = tuple(image.data.shape)[-2:]
        stem = image.name.split(" · ")[-1]
        layer = self._viewer.add_labels(np.zeros(shape, np.int32),
                                        name=f"painted ROIs · {stem}",
                                        metadata={ROI_KEY: self.file.value},
                                        **self._geometry())
        self._viewer.layers.selection.active = layer
        layer.brush_size = max(3, min(shape) // 40)
        layer.selected_label = 1
        layer.mode = "paint"
        self.roi_layer.reset_choices()
        self.roi_layer.value = layer
        self.summary.value = ("paint ROIs on the image: one label per ROI (raise the label "
                              "for the next one); the table follows")
        return layer

    # -- find cells -----------------------------------------------------------------------
    def find_cells(self, _value=None):
        """Segment the chosen channel's sum in a worker; adds an ROI Labels layer."""
        from napari.utils.notifications import show_warning

        if self.file.value is None or self.channel.value is None:
            show_warning("Open a NanoSIMS .im file first (no file chosen).")
            return None
        acquisition = self._source()
        if acquisition is None:
            show_warning("Some channel layers of this file were deleted; open it again.")
            return None
        index = int(self.channel.value)
        first = next(iter(channel_layers(self._viewer, self.file.value).values()))
        geometry = self._geometry()
        segment = SEGMENT.parameter
        options = dict(method=control_value(segment("method"), self.method),
                       smoothing_px=control_value(segment("smoothing_px"), self.smoothing),
                       min_area_px=control_value(segment("min_area_px"), self.min_area),
                       split_touching=control_value(segment("split_touching"), self.split))

        def job():
            yield Progress("find cells", 0, 1)
            labels = segment_rois(accumulate(acquisition).counts[index], **options)
            yield Progress("find cells", 1, 1)
            return labels, first.name.split(" · ")[-1], geometry

        return self._runner.start(job(), description="Finding cells",
                                  on_returned=self._add_roi_layer)

    def _add_roi_layer(self, returned) -> None:
        labels, stem, geometry = returned
        if self._closed:
            return
        name = f"ROIs · {stem}"
        if name in self._viewer.layers:
            self._viewer.layers[name].data = labels
            layer = self._viewer.layers[name]
        else:
            layer = self._viewer.add_labels(labels, name=name,
                                            metadata={ROI_KEY: self.file.value}, **geometry)
        self.roi_layer.reset_choices()
        self.roi_layer.value = layer
        self.summary.value = f"{int(labels.max())} ROIs found"
        self._schedule()  # measure once this worker has finished

    # -- measure --------------------------------------------------------------------------
    def run(self, _value=None):
        """Measure every ROI in a worker: the table, ROI numbers and the depth profile."""
        from napari.utils.notifications import show_warning

        layer = self.roi_layer.value
        if self.file.value is None or layer is None:
            if _value is not None:
                show_warning("Choose (or find) the ROIs first.")
            return None
        acquisition = self._source()
        if acquisition is None:
            return None
        try:
            labels, note = roi_labels(layer, self._image_layer(), acquisition.shape[2:])
        except ValueError as exc:
            self.summary.value = str(exc)
            if _value is not None:  # pressed: say it where it is seen
                show_warning(str(exc))
            return None
        expressions = [text.strip() for text in self.expressions.value.split(";")
                       if text.strip()]
        measured = {"file": acquisition.path, "history": acquisition.history_dicts(),
                    "expressions": self.expressions.value,
                    "note": self._source_note(acquisition), "roi_note": note}

        def job():
            yield Progress("measure", 0, 2)
            table = roi_table(acquisition, labels, expressions)
            yield Progress("measure", 1, 2)
            profile = (depth_profile(acquisition, labels, expressions[0])
                       if expressions and acquisition.n_frames > 1 else None)
            return table, profile, labels, measured

        return self._runner.start(job(), description="Measuring ROIs",
                                  on_returned=self._show)

    def _show(self, returned) -> None:
        if self._closed or self._image_layer() is None:  # closed, or the file's gone
            return
        table, profile, labels, measured = returned
        self.statistics, self.profile, self._labels_image = table, profile, labels
        self._measured = measured
        self.classes.measured()  # classes kept by ROI number; fills the table
        self._draw_numbers(table)
        self._plot_profile()
        n = int(table.roi.nunique()) if len(table) else 0
        exact = bool(table.exact_counts.all()) if len(table) else True
        self.summary.value = (f"{n} ROIs measured {measured['note']}; "
                              + ("exact counts" if exact else
                                 "approximate errors and dispersion test: see the warning")
                              + (f". Note: {measured['roi_note']}" if measured["roi_note"]
                                 else ""))

    def _fill_table(self, table) -> None:
        channels = self._channel_labels()
        quantities = [q for q in dict.fromkeys(table.quantity) if q not in set(channels)]
        fill_table(self.table, table, quantities, channels, self.classes.assigned)

    def _channel_labels(self):
        return [layer.metadata["nanosims"]["label"] for layer in
                channel_layers(self._viewer, self.file.value).values()] if self.file.value \
            else []

    def _draw_numbers(self, table) -> None:
        """A points layer at the ROI centroids, labelled with the ROI numbers."""
        if not len(table):
            return
        first = table.drop_duplicates("roi")
        source = self.roi_layer.value
        geometry = self._geometry()  # the image's pixels, scale and units
        scale = geometry["scale"]
        points = np.column_stack([first.centroid_y_um / scale[0] - 0.5,
                                  first.centroid_x_um / scale[1] - 0.5])
        name = f"ROI numbers · {source.name}" if source is not None else "ROI numbers"
        features = {"roi": first.roi.to_numpy()}
        text = {"string": "{roi}", "color": "white", "size": 10}
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            layer.data = points
            layer.features = features
            layer.text = text
        else:
            self._viewer.add_points(points, name=name, features=features, text=text,
                                    size=0.1, face_color="transparent",
                                    border_color="transparent", **geometry)

    def _plot_profile(self, selected=None) -> None:
        """Error bars of the first expression per frame, for the selected ROIs (or all)."""
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        if self._figure_canvas is None:
            self._figure_canvas = FigureCanvasQTAgg(Figure(figsize=(3, 2.2)))
            self._figure_canvas.setMinimumHeight(100)
            self.result_tabs.addTab(self._figure_canvas, "depth profile")
        figure = self._figure_canvas.figure
        figure.clear()
        axes = figure.add_subplot(111)
        profile = self.profile
        if profile is not None and len(profile):
            rois = selected or sorted(profile.roi.unique())[:8]
            for roi in rois:
                part = profile[profile.roi == roi]
                axes.errorbar(part.frame, part.value, yerr=part.sigma, marker="o", ms=3,
                              capsize=2, label=f"ROI {roi}")
            axes.set_xlabel("frame")
            axes.set_ylabel(self.expressions.value.split(";")[0].strip())
            axes.legend(fontsize=7)
        else:
            axes.text(0.5, 0.5, "depth profile: measure ROIs (2 frames or more)",
                      ha="center", va="center", fontsize=8, transform=axes.transAxes)
        figure.tight_layout()
        self._figure_canvas.draw_idle()

    def _row_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        if self.plots is not None:
            try:
                self.plots.highlight(table_rois(self.table, rows))
            except RuntimeError:  # its dock was closed
                self.plots = None
        if not rows or self.statistics is None:
            return
        rois = table_rois(self.table, rows)
        layer = self.roi_layer.value
        if layer is not None and layer.__class__.__name__ == "Labels":
            layer.selected_label = rois[0]
        first = self.statistics[self.statistics.roi == rois[0]].iloc[0]
        scene = getattr(self._viewer, "scene", None)  # napari >= 0.9 keeps the camera there
        camera = scene.camera if scene is not None else self._viewer.camera
        center = list(camera.center)
        center[-2:] = [first.centroid_y_um, first.centroid_x_um]
        camera.center = tuple(center)
        self._plot_profile(rois)

    # -- export ---------------------------------------------------------------------------
    def export_table(self, path=None, overwrite: bool = False):
        """Write the per-ROI table as CSV (and Parquet when pyarrow is there), with
        classes the per-class table too, and a JSON sidecar (file, history, classes,
        control, standard, rate inputs). Asks where when ``path`` is None (the dialog
        confirms replacing a file); a given ``path`` whose files exist is kept unless
        ``overwrite``. Returns the paths written (the CSV and the JSON first)."""
        return self.classes.export(path, overwrite)
