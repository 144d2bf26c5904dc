"""One dock with a tab per task, so the canvas keeps most of the window."""

from __future__ import annotations

import napari.viewer
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

from .alignment import AlignFramesWidget
from .corrections import CorrectionsWidget
from .header_panel import HeaderPanel
from .hot_pixels import HotPixelWidget
from .ratio import RatioWidget
from .rois import RoiWidget

# Wide enough for the labelled controls, narrow enough that a 1280-pixel window keeps
# well over half of its width for the image.
PANEL_WIDTH_PX = 330


class NanoSIMSPanel(QWidget):
    """The plugin's widgets as tabs of one dock: Clean, Correct, Align, Ratio, ROIs
    and Header.

    The individual widgets stay available on their own from the Plugins menu.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.clean = HotPixelWidget(viewer)
        self.correct = CorrectionsWidget(viewer)
        self.align = AlignFramesWidget(viewer)
        self.ratio = RatioWidget(viewer)
        self.rois = RoiWidget(viewer)
        self.header = HeaderPanel(viewer)
        self.tabs = QTabWidget()
        for title, widget in (("Clean", self.clean.native), ("Correct", self.correct.native),
                              ("Align", self.align.native), ("Ratio", self.ratio.native),
                              ("ROIs", self.rois.native), ("Header", self.header)):
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setWidget(widget)
            self.tabs.addTab(scroll, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setMaximumWidth(PANEL_WIDTH_PX)
        self.setMinimumWidth(PANEL_WIDTH_PX - 40)
