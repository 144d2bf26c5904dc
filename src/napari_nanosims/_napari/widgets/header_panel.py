"""The "NanoSIMS header" side panel: every header field of the active layer's file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import napari.viewer
from qtpy.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..layers import header_rows
from ._common import nanosims_info

#: Widest the field-name and unit columns get (pixels); the value column takes the rest.
FIELD_COLUMN_PX, UNIT_COLUMN_PX = 95, 40


class HeaderPanel(QWidget):
    """Shows the header of the file the active layer came from, grouped by file block.

    A search box filters the rows; "Copy as JSON" puts the header on the clipboard.
    A placeholder is shown when the active layer did not come from an ``.im`` file.
    """

    PLACEHOLDER = "Select a layer opened from a NanoSIMS .im file to see its header."

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self._viewer = viewer
        self.header: dict | None = None
        self.placeholder = QLabel(self.PLACEHOLDER)
        self.placeholder.setWordWrap(True)
        self.search = QLineEdit()
        self.search.setPlaceholderText("search fields and values")
        self.search.setClearButtonEnabled(True)
        self.copy_button = QPushButton("Copy as JSON")
        self.title = QLabel()
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["field", "value", "unit"])
        # In a 290-pixel panel the value column must not be what is left over: it
        # stretches, the unit fits its text and the field column is capped in
        # show_header (long names are elided; the full name is in the tooltip).
        columns = self.tree.header()
        assert columns is not None  # every QTreeWidget has one
        columns.setStretchLastSection(False)
        columns.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        columns.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        columns.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        self.title.setWordWrap(True)
        content = QWidget()
        top = QHBoxLayout()
        top.addWidget(self.search)
        top.addWidget(self.copy_button)
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.title)
        inner.addLayout(top)
        inner.addWidget(self.tree)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.placeholder)
        self.pages.addWidget(content)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        self.search.textChanged.connect(self._filter)
        self.copy_button.clicked.connect(self.copy_json)
        viewer.layers.selection.events.active.connect(self._on_active)
        self._on_active()

    def _on_active(self, _event=None) -> None:
        info = nanosims_info(self._viewer.layers.selection.active)
        path = Path(info["header"].get("path", "")) if info else Path()
        self.show_header(info["header"] if info else None,
                         title=(f"{path.name} · layer {info['label']} "
                                f"({info.get('kind', 'raw')})") if info else "")
        # The folder in the tooltip: a path has no spaces to wrap at.
        self.title.setToolTip(str(path) if info else "")

    def show_header(self, header: dict | None, title: str = "") -> None:
        """Fill the tree from a header dict, or show the placeholder for None."""
        self.header = header
        self.tree.clear()
        if header is None:
            self.pages.setCurrentIndex(0)
            return
        self.title.setText(title)
        for group, rows in header_rows(header):
            parent = QTreeWidgetItem([group, "", ""])
            for name, value, unit in rows:
                item = QTreeWidgetItem(parent, [name, value, unit])
                item.setToolTip(0, name)
                item.setToolTip(1, value)
            self.tree.addTopLevelItem(parent)
            parent.setExpanded(True)
        self.tree.resizeColumnToContents(0)
        self.tree.resizeColumnToContents(2)
        # capped, so that the values keep most of a narrow panel's width
        self.tree.setColumnWidth(0, min(self.tree.columnWidth(0), FIELD_COLUMN_PX))
        self.tree.setColumnWidth(2, min(self.tree.columnWidth(2), UNIT_COLUMN_PX))
        self.pages.setCurrentIndex(1)
        self._filter(self.search.text())

    def _filter(self, text: str) -> None:
        wanted = text.strip().lower()
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            assert group is not None  # g < topLevelItemCount()
            group_match = wanted in group.text(0).lower()
            visible_children = 0
            for c in range(group.childCount()):
                child = group.child(c)
                assert child is not None  # c < childCount()
                match = (not wanted or group_match
                         or any(wanted in child.text(k).lower() for k in range(3)))
                child.setHidden(not match)
                visible_children += match
            group.setHidden(bool(wanted) and not visible_children)

    def visible_fields(self) -> list[str]:
        """Names of the rows currently shown (for tests and accessibility)."""
        names = []
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            assert group is not None  # g < topLevelItemCount()
            if not group.isHidden():
                # c < childCount(): never None
                children = [cast(QTreeWidgetItem, group.child(c))
                            for c in range(group.childCount())]
                names += [child.text(0) for child in children if not child.isHidden()]
        return names

    def copy_json(self) -> str:
        """Copy the header as JSON to the clipboard and return the text."""
        text = json.dumps(self.header or {}, indent=2, ensure_ascii=False)
        clipboard = QApplication.clipboard()
        assert clipboard is not None  # there is a QApplication: this widget exists
        clipboard.setText(text)
        return text
