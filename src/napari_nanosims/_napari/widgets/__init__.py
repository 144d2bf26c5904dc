"""Dock widgets: the only part of napari-nanosims that imports Qt (through qtpy) and magicgui."""

from .alignment import AlignFramesWidget
from .corrections import CorrectionsWidget
from .correlate import CorrelateWidget
from .header_panel import HeaderPanel
from .hot_pixels import HotPixelWidget
from .panel import NanoSIMSPanel
from .ratio import RatioWidget
from .rois import RoiWidget

__all__ = ["AlignFramesWidget", "CorrectionsWidget", "CorrelateWidget", "HeaderPanel",
           "HotPixelWidget", "NanoSIMSPanel", "RatioWidget", "RoiWidget"]
