"""The data model every layer works on: the acquisition, its channels and its history.

Nothing here reads files or runs steps; ``io/`` builds these objects from bytes and
``steps/`` returns new ones.
"""

from .acquisition import Acquisition, mass_stack
from .channels import SE_ALIASES, Channel, HistoryRecord, channels_from_header, normalise_label
from .header import ImHeader, detector_name, synthetic_header

__all__ = ["Acquisition", "Channel", "HistoryRecord", "ImHeader", "SE_ALIASES",
           "channels_from_header", "detector_name", "mass_stack", "normalise_label",
           "synthetic_header"]
