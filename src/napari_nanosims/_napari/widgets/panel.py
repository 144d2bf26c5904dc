"""One dock with a tab per task, so the canvas keeps most of the window."""

from __future__ import annotations

import napari.viewer
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from .alignment import AlignFramesWidget
from .corrections import CorrectionsWidget
from .correlate import CorrelateWidget
from .header_panel import HeaderPanel
from .hot_pixels import HotPixelWidget
from .ratio import RatioWidget
from .rois import RoiWidget
from .session import SessionWidget

# Wide enough for the labelled controls, narrow enough that a 1280-pixel window keeps
# over half of its width for the image beside napari's layer column (320 pixels, its
# minimum): 1280 - 320 - 290 - the dock separators leaves the canvas 51 %.
PANEL_WIDTH_PX = 290


class NanoSIMSPanel(QWidget):
    """The plugin's widgets as tabs of one dock: Clean, Correct, Align, Ratio, ROIs,
    Correlate (external images) and File (undo, back to raw, the session as a recipe,
    exports, and the file's header).

    The individual widgets stay available on their own from the Plugins menu.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.clean = HotPixelWidget(viewer)
        self.correct = CorrectionsWidget(viewer)
        self.align = AlignFramesWidget(viewer)
        self.ratio = RatioWidget(viewer)
        self.rois = RoiWidget(viewer)
        self.correlate = CorrelateWidget(viewer, rois=self.rois)
        # The header shares the File tab: one more tab would not fit a 290-pixel panel.
        self.header = HeaderPanel(viewer)
        self.session = SessionWidget(viewer, header=self.header)
        self.tabs = QTabWidget()
        # Seven titles in 290 pixels without scroll arrows: napari's tabs have 6 pixels
        # of padding each side (344 pixels in all); 2 pixels make them 288.
        self.tabs.setStyleSheet("QTabBar::tab { padding: 3px 2px; }")
        # Each tab scrolls its own controls and keeps Run and its results in sight.
        for title, widget in (("Clean", self.clean.native), ("Correct", self.correct.native),
                              ("Align", self.align.native), ("Ratio", self.ratio.native),
                              ("ROIs", self.rois.native),
                              ("Correlate", self.correlate.native),
                              ("File", self.session.native)):
            self.tabs.addTab(widget, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setMinimumWidth(PANEL_WIDTH_PX - 10)
        self.setMaximumWidth(PANEL_WIDTH_PX)
