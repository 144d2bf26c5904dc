"""One dock with a tab per task, so the canvas keeps most of the window."""

from __future__ import annotations

import napari.viewer
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from .alignment import AlignFramesWidget
from .corrections import CorrectionsWidget
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
    """The plugin's widgets as tabs of one dock: Clean, Correct, Align, Ratio, ROIs and
    File (undo, back to raw, the session as a recipe, exports, and the file's header).

    The individual widgets stay available on their own from the Plugins menu.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.clean = HotPixelWidget(viewer)
        self.correct = CorrectionsWidget(viewer)
        self.align = AlignFramesWidget(viewer)
        self.ratio = RatioWidget(viewer)
        self.rois = RoiWidget(viewer)
        # The header shares the File tab: seven tabs would not fit a 290-pixel panel.
        self.header = HeaderPanel(viewer)
        self.session = SessionWidget(viewer, header=self.header)
        self.tabs = QTabWidget()
        # Each tab scrolls its own controls and keeps Run and its results in sight.
        for title, widget in (("Clean", self.clean.native), ("Correct", self.correct.native),
                              ("Align", self.align.native), ("Ratio", self.ratio.native),
                              ("ROIs", self.rois.native), ("File", self.session.native)):
            self.tabs.addTab(widget, title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setMinimumWidth(PANEL_WIDTH_PX - 10)
        self.setMaximumWidth(PANEL_WIDTH_PX)
