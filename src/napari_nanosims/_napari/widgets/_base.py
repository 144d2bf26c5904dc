"""The base of the dock widgets that work on one opened file."""

from __future__ import annotations

from collections.abc import Sequence

from magicgui.widgets import ComboBox, Container, ProgressBar, PushButton, Widget

from ._common import acquisition_choices, freeze_startup_heap, refresh_choices, reset_in_order
from ._controls import align_labels, compact_choices, fit_to_width
from ._runner import WorkerRunner


class FileWidget(Container):
    """A file chooser, Run and Cancel buttons with one worker at a time, and closing.

    Subclasses build their controls, call :meth:`_lay_out` with them and their result
    widgets, define ``run`` and call :meth:`_connect` at the end of their ``__init__``.

    The layout keeps what a user needs after Run in sight at any window height: the
    labelled controls scroll in the upper part; the Run and Cancel row, the progress bar
    and the results (word-wrapped notes, tables, plots) are pinned below them.
    """

    def __init__(self, viewer, run_text: str):
        freeze_startup_heap(viewer)  # no full garbage collection of napari's objects after Run
        super().__init__(labels=False)
        self._viewer = viewer
        self._closed = False
        self.file = ComboBox(label="file", choices=self._file_choices, nullable=True)
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel")
        self.progress = ProgressBar(label="progress")
        self.controls_box = _Controls(labels=True)
        self.run_row = Container(layout="horizontal", labels=False,
                                 widgets=[self.run_button, self.cancel_button])
        self.results_box: Container[Widget] = Container(labels=False)
        for box in (self.controls_box, self.run_row, self.results_box):
            box.margins = (0, 0, 0, 0)

    def _lay_out(self, controls: list, results: Sequence = ()) -> None:
        """Place ``controls`` (magicgui widgets, labelled) and ``results``.

        ``results`` are magicgui widgets or Qt widgets (tables, plots). The controls scroll
        in the upper pane of a splitter; the Run row, the progress bar and the results
        are in the lower pane, so they stay in sight at any window height. Labels among
        the results wrap their text; tables and plots take the height that is left.
        """
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import (
            QFrame,
            QLabel,
            QScrollArea,
            QSizePolicy,
            QSplitter,
            QVBoxLayout,
            QWidget,
        )

        self.controls_box.extend(controls)
        for control in controls:  # notes without a label take the row's full width
            labeled = control._labeled_widget()
            if not control.label and labeled is not None:
                labeled._label_widget.native.hide()
        self.controls_box.native.layout().addStretch(1)  # rows keep their height
        fit_to_width(self.controls_box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.controls_box.native)
        self.progress.native.setSizePolicy(QSizePolicy.Policy.Expanding,
                                           QSizePolicy.Policy.Fixed)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.run_row, self.progress, self.results_box):
            lower_layout.addWidget(widget.native)
        growing = False
        for result in results:
            if isinstance(result, Widget):
                self.results_box.append(result)
                native = result.native
            else:
                self.results_box.native.layout().addWidget(result)
                native = result
            if isinstance(native, QLabel):
                native.setWordWrap(True)
                native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
            elif native.sizePolicy().verticalPolicy() != QSizePolicy.Policy.Fixed:
                growing = True
        self.controls_scroll = scroll
        layout = self.native.layout()
        if growing:
            # Tables and plots share the height with the controls: the user moves the
            # splitter; at first the controls get what they need.
            self.splitter = QSplitter(Qt.Orientation.Vertical)
            self.splitter.setChildrenCollapsible(False)
            self.splitter.addWidget(scroll)
            self.splitter.addWidget(lower)
            self.splitter.setStretchFactor(0, 0)
            self.splitter.setStretchFactor(1, 1)
            layout.addWidget(self.splitter)
            self._split_once = _SplitOnFirstShow(self.splitter, self.controls_box.native)
        else:
            # Notes only: they get the height their wrapped text needs (a box layout
            # asks them, a splitter would not), and the controls scroll in the rest.
            layout.addWidget(scroll, 1)
            layout.addWidget(lower, 0)

    def _connect(self) -> None:
        from .file_view import SHOW_CHOICES, SHOW_ONE, FileView

        self._runner = WorkerRunner(self.run_button, self.cancel_button, self.progress)
        # One file at a time or side by side: one setting per viewer, offered in every
        # tab under the file chooser once two files are open.
        self._view = FileView.of(self._viewer)
        self.show_files = ComboBox(label="show", choices=SHOW_CHOICES, value=SHOW_ONE,
                                   tooltip="one file: only the chosen file's layers are "
                                           "visible; side by side: every file, in a row")
        if self.file in self.controls_box:
            self.controls_box.insert(self.controls_box.index(self.file) + 1, self.show_files)
        self.show_files.visible = False
        compact_choices(self.controls_box)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self._runner.cancel)
        # Every change of the layer list, and renamed layers (_refresh_files watches each
        # new layer's name), refreshes the file, channel and layer choices.
        events = self._viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._refresh_files)
        for layer in self._viewer.layers:
            layer.events.name.connect(self._refresh_files)
        self._view.listen(self._shown_file_changed)
        self.file.changed.connect(self._file_chosen)
        self.show_files.changed.connect(self._view.set_mode)
        self.native.destroyed.connect(self._on_destroyed)
        self._refresh_files()

    def _file_choices(self, _widget=None):
        return acquisition_choices(self._viewer)

    def _refresh_files(self, event=None) -> None:
        """Offer the opened files (the shown one first chosen) and re-read every choice
        that depends on the layers, in order; then :meth:`_files_refreshed`.

        Called for every layer added, removed, moved or renamed, so a tab docked before
        the files were opened sees each file's layers as they arrive.
        """
        if self._closed:
            return
        try:
            if getattr(event, "type", None) == "inserted":
                event.value.events.name.connect(self._refresh_files)
            previous = self.file.value
            reset_in_order(self.file)
            available = [choice for choice in self.file.choices if choice is not None]
            if self.file.value is None and available:
                shown = self._view.shown
                self.file.value = shown if shown in available else available[0]
            refresh_choices(self, skip=(self.file,))
            self.show_files.visible = len(available) > 1
            self._files_refreshed(previous)
        except RuntimeError:  # the Qt side is gone (the viewer is closing)
            self._closed = True

    def _files_refreshed(self, previous) -> None:
        """Called after the layers changed (``previous``: the file chosen before), with
        every drop-down already re-read: re-read what else depends on the file's layers."""

    def _file_chosen(self, value=None) -> None:
        """A file chosen here is shown (and chosen in the other tabs)."""
        if value is not None and value != self._view.shown and not self._closed:
            self._view.show(value)

    def _shown_file_changed(self, acquisition_id, mode) -> None:
        """Follow the file the viewer shows (the selected layer's, or another tab's)."""
        if self._closed:
            return
        try:
            if self.show_files.value != mode:
                with self.show_files.changed.blocked():
                    self.show_files.value = mode
            if (acquisition_id is not None and acquisition_id != self.file.value
                    and acquisition_id in self.file.choices):
                self.file.value = acquisition_id
        except RuntimeError:
            self._closed = True

    def run(self, _value=None):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _on_destroyed(self, _object=None) -> None:
        self._closed = True
        self._runner.cancel()


class _Controls(Container):
    """A labelled column whose label width is what Qt draws (see :func:`align_labels`):
    measured again whenever a label changes and when the column is shown or restyled
    (napari's style sheet sets the font only once the panel is in its window)."""

    def __init__(self, **kwargs):
        from qtpy.QtCore import QEvent, QObject

        super().__init__(**kwargs)
        controls = self

        class _Remeasure(QObject):
            def eventFilter(self, _watched, event):  # noqa: N802 - Qt's name
                if event.type() in (QEvent.Type.Show, QEvent.Type.StyleChange,
                                    QEvent.Type.FontChange):
                    controls._unify_label_widths()
                return False

        self._remeasure = _Remeasure(self.native)
        self.native.installEventFilter(self._remeasure)

    def _unify_label_widths(self) -> None:
        if getattr(self, "_initialized", False) and self.labels:
            align_labels(list(self))


class _SplitOnFirstShow:
    """Give the controls their full height (up to 60 % of the tab) the first time the
    splitter is shown with a size; the results get the rest. Qt's own first split
    follows size hints, which squeezed the ROIs tab's controls to three rows."""

    SHARE = 0.6

    def __init__(self, splitter, controls):
        from qtpy.QtCore import QEvent, QObject

        self._done = False
        helper = self

        class _Filter(QObject):
            def eventFilter(self, _watched, event):  # noqa: N802 - Qt's name
                if (not helper._done and event.type() == QEvent.Type.Resize
                        and splitter.height() > 0 and splitter.isVisible()):
                    helper._done = True
                    total = sum(splitter.sizes())
                    wanted = controls.sizeHint().height() + 4
                    first = int(min(wanted, _SplitOnFirstShow.SHARE * total))
                    splitter.setSizes([first, max(total - first, 0)])
                return False

        self._filter = _Filter(splitter)
        splitter.installEventFilter(self._filter)
