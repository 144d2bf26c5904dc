"""The header of an acquisition as the rest of the package sees it: :class:`ImHeader`.

The reader (``io/header.py``) decodes the bytes into it; :meth:`Acquisition.from_arrays`
builds one for arrays that did not come from a file. No file-format code lives here.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from typing import Any

__all__ = ["ImHeader", "detector_name", "synthetic_header", "SE_TROLLEY_SLOT"]

SE_TROLLEY_SLOT = 8


@dataclasses.dataclass(frozen=True)
class ImHeader:
    """The header of a NanoSIMS ``.im`` file, with units in the field names.

    Attributes
    ----------
    path : str
        Absolute path of the file.
    byte_order : str
        ``'<'`` (little-endian, Windows software) or ``'>'`` (big-endian, Unix software).
    release : int
        Format release: 5, 9, 11 (Unix software) or 4108 (Windows "N50 V7").
    file_type, file_type_name : int, str
        Analysis type code (27 image, 29 grain-mode image, 39 line-scan image) and its name.
    has_data : bool
        False for header-only files ("data included: no") and for files with no complete frame.
    n_frames, n_masses, width, height : int
        Frames actually readable, masses (detectors), image width (columns) and height (rows),
        in pixels.
    n_frames_header : int
        Frames announced by the header (may differ from ``n_frames`` for truncated files).
    bytes_per_pixel : int
        2 (unsigned 16-bit) or 4 (unsigned 32-bit).
    labels : tuple of str
        Species labels with whitespace collapsed (``'12C 14N'``); the secondary-electron
        channel is ``'SE'``.
    masses_amu : tuple of float
        Mass of each species in atomic mass units (0.0 for SE).
    se_index : int or None
        Index of the secondary-electron channel, None when there is none.
    trolley_slots : tuple of int
        Detector slot of each mass (1-5 EM1-EM5, 8 SE, 10/11 EM6/EM7, 0 unknown).
    detectors : tuple of str or None
        Detector of each mass: ``'EM1'``..``'EM7'``, ``'SE'``, ``'FC'``, None when unknown.
    raster_um, pixel_size_um : float
        Field of view and pixel size, micrometres.
    dwell_time_us : float
        Counting time per pixel, microseconds.
    frame_time_s : float
        Time to acquire one frame (dwell x width x height), seconds.
    sample_name, comment, user, experiment, method, analysis_name : str
        Free-text fields as stored.
    analysis_date : datetime.datetime or None
        Start of the analysis (minute resolution), None when the stored date is unreadable.
    analysis_duration_s : int
        Analysis duration, seconds.
    stage_position_um : tuple of int
        Stage x, y, z, micrometres.
    primary_ion : str
        Primary ion source, e.g. ``'Cs+'``.
    primary_current_raw : tuple of int
        The header's "primary current" field at the start and the end of the analysis
        (``Anal_param_nano``), as stored. Its unit is not established: the shared files
        hold 23 430-47 130, about 10**4 times a NanoSIMS imaging beam in pA, so it is not
        the current at the sample that QSA needs (2147483647: not measured).
    dead_times_ns : tuple of int
        Dead time of the electron multipliers EM1.. EM5 (and EM6, EM7 when stored), ns.
    em_yields_percent : tuple of float
        Yield of the same electron multipliers, percent.
    em_backgrounds_cps : tuple of int
        Dark-count background of the same electron multipliers, counts per second.
    header_size : int
        Offset of the first pixel byte.
    mask_nano_version, anal_param_nano_release : int
        Versions of two header blocks (they decide the layout).
    roll_applied : tuple of int
        Cyclic shift (rows, columns) applied to the pixels by the reader; (0, 0) for none.
    written_by_napari_nanosims : bool
        True when the file was made by :func:`napari_nanosims.write_im`.
    n_b_fields : int
        B fields (magnet settings) scanned per cycle: 1, or 2 and more in peak-switching
        mode, where every stored plane holds one scan per B field and ``n_frames`` counts
        the scans (stored planes x B fields, in time order).
    channel_frames : tuple of (tuple of int or None)
        Per mass, the frames it was counted in; None (or an empty tuple overall) for every
        frame. Only peak-switched files count some masses in some frames.
    dwell_times_us : tuple of float
        Per mass, the dwell time of its B field, microseconds (empty: ``dwell_time_us``).
    """

    path: str
    byte_order: str
    release: int
    file_type: int
    file_type_name: str
    has_data: bool
    n_frames: int
    n_frames_header: int
    n_masses: int
    width: int
    height: int
    bytes_per_pixel: int
    labels: tuple[str, ...]
    masses_amu: tuple[float, ...]
    se_index: int | None
    trolley_slots: tuple[int, ...]
    raster_um: float
    pixel_size_um: float
    dwell_time_us: float
    frame_time_s: float
    sample_name: str
    comment: str
    user: str
    experiment: str
    method: str
    analysis_name: str
    analysis_date: _dt.datetime | None
    analysis_duration_s: int
    stage_position_um: tuple[int, int, int]
    primary_ion: str
    primary_current_raw: tuple[int, int]
    dead_times_ns: tuple[int, ...]
    em_yields_percent: tuple[float, ...]
    header_size: int
    mask_nano_version: int
    anal_param_nano_release: int
    roll_applied: tuple[int, int] = (0, 0)
    written_by_napari_nanosims: bool = False
    detectors: tuple[str | None, ...] = ()
    em_backgrounds_cps: tuple[int, ...] = ()
    n_b_fields: int = 1
    channel_frames: tuple[tuple[int, ...] | None, ...] = ()
    dwell_times_us: tuple[float, ...] = ()

    @property
    def file_name(self) -> str:
        """The file's name without its folder."""
        return os.path.basename(self.path)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImHeader:
        """The header back from :meth:`to_dict` (as stored in napari layer metadata)."""
        kwargs = {}
        for field in dataclasses.fields(cls):
            if field.name not in values:
                continue
            value = values[field.name]
            if field.name == "analysis_date" and isinstance(value, str):
                value = _dt.datetime.fromisoformat(value)
            elif isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            kwargs[field.name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the header as JSON-serialisable values (dates as ISO 8601 strings)."""
        result: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, _dt.datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            result[field.name] = value
        return result


def detector_name(slot: int, detector_type: int = 0, old_layout: bool = False) -> str | None:
    """The detector in trolley ``slot``: ``'EM1'``..``'EM7'``, ``'SE'``, ``'FC'`` or None.

    ``detector_type`` is the Tab_mass type field (0 electron multiplier, 1 Faraday cup).
    """
    if slot == SE_TROLLEY_SLOT:
        return "SE"
    if detector_type == 1:
        return "FC"
    if 1 <= slot <= 5:
        return f"EM{slot}"
    if not old_layout and slot in (10, 11):
        return f"EM{slot - 4}"
    return None


def synthetic_header(name, shape, labels, masses_amu, se_index, slots, detectors,
                     pixel_size_um, dwell_time_us, dead_times_ns) -> ImHeader:
    """An :class:`ImHeader` describing arrays that did not come from a file."""
    n_frames, n_masses, height, width = shape
    return ImHeader(
        path=name, byte_order="=", release=0, file_type=27, file_type_name="image",
        has_data=n_frames > 0, n_frames=n_frames, n_frames_header=n_frames,
        n_masses=n_masses, width=width, height=height, bytes_per_pixel=4,
        labels=tuple(labels), masses_amu=tuple(float(m) for m in masses_amu),
        se_index=se_index, trolley_slots=tuple(slots),
        raster_um=float(pixel_size_um * width), pixel_size_um=float(pixel_size_um),
        dwell_time_us=float(dwell_time_us),
        frame_time_s=float(dwell_time_us) * width * height * 1e-6, sample_name="",
        comment="", user="", experiment="", method="", analysis_name="synthetic",
        analysis_date=None, analysis_duration_s=0, stage_position_um=(0, 0, 0),
        primary_ion="", primary_current_raw=(0, 0), dead_times_ns=tuple(dead_times_ns),
        em_yields_percent=(100.0,) * len(dead_times_ns), header_size=0,
        mask_nano_version=0, anal_param_nano_release=0, detectors=tuple(detectors),
        em_backgrounds_cps=(0,) * len(dead_times_ns))
