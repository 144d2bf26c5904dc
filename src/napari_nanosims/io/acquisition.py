"""Open a ``.im`` file as an :class:`~napari_nanosims.model.Acquisition`.

The model itself (Acquisition, Channel, HistoryRecord, the label rules) lives in
:mod:`napari_nanosims.model`; it is re-exported here for the code that imported it from
this module.
"""

from __future__ import annotations

import os

import numpy as np

from ..model import (
    SE_ALIASES,
    Acquisition,
    Channel,
    HistoryRecord,
    channels_from_header,
    normalise_label,
    synthetic_header,
)
from .lazy import LazyCounts
from .reader import MimsFile

__all__ = ["Acquisition", "Channel", "HistoryRecord", "open_acquisition", "normalise_label",
           "channels_from_header", "synthetic_header", "SE_ALIASES"]


def open_acquisition(path: str | os.PathLike, roll_data: bool | str = "auto",
                     byte_order: str | None = None) -> Acquisition:
    """Open a ``.im`` file as an :class:`Acquisition` (read-only, lazy).

    Parameters
    ----------
    path : str or path-like
        The ``.im`` file.
    roll_data : {'auto', True, False}
        As for :func:`napari_nanosims.load_mims`.
    byte_order : {None, '<', '>'}
        None detects it; ``'<'`` or ``'>'`` forces it.

    Raises
    ------
    ImFormatError
        If the file is not a readable NanoSIMS image file.
    """
    mims = MimsFile(path, byte_order=byte_order, roll_data=roll_data)
    header = mims.header
    counts = mims.pixels()
    if not isinstance(counts, LazyCounts):  # pragma: no cover - defensive
        counts = LazyCounts(np.asarray(counts))
    return Acquisition(header=header, channels=channels_from_header(header), counts=counts,
                       path=header.path)
