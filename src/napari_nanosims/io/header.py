"""The header of a Cameca NanoSIMS ``.im`` file: its blocks, decoded into :class:`ImHeader`.

``docs/file-format.md`` describes the layout this module follows.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
import struct
from typing import Any

from . import _layout as L
from .._errors import ImFormatError

__all__ = ["ImHeader", "parse_header_blocks", "mass_slots", "detector_name"]

MAX_MASSES = 60
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


def _fail(path: str | os.PathLike, message: str) -> ImFormatError:
    return ImFormatError(f"{os.fspath(path)}: {message}")


def _parse_date(date: str, time: str) -> _dt.datetime | None:
    match_d = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{2,4})", date.strip())
    match_t = re.fullmatch(r"(\d{1,2})[:h.](\d{1,2})(?::(\d{1,2}))?", time.strip())
    if not match_d:
        return None
    day, month, year = (int(v) for v in match_d.groups())
    if year < 100:  # two-digit years: the instrument dates from 1990s on
        year += 2000 if year < 69 else 1900
    hour = minute = second = 0
    if match_t:
        hour, minute = int(match_t.group(1)), int(match_t.group(2))
        second = int(match_t.group(3) or 0)
    try:
        return _dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


class _HeaderBuffer:
    """The header bytes with bounds-checked decoding that names the offset at fault."""

    def __init__(self, path, data: bytes, byte_order: str):
        self.path = path
        self.data = data
        self.byte_order = byte_order

    def need(self, start: int, size: int, what: str) -> None:
        if start < 0 or start + size > len(self.data):
            raise _fail(self.path, f"{what} at offset {start} (+{size} bytes) lies outside "
                        f"the {len(self.data)}-byte header")

    def block(self, start: int, layout: L.Layout, size: int, what: str) -> L.Block:
        self.need(start, size, what)
        return L.decode_block(self.data, start, layout, self.byte_order)

    def tag_at(self, offset: int, tag: bytes) -> bool:
        return 0 <= offset and self.data[offset:offset + len(tag) + 1] == tag + b"\0"


def _polyatomique(buf: _HeaderBuffer, start: int) -> L.Block:
    poly = buf.block(start, L.POLYATOMIQUE, L.POLYATOMIQUE_SIZE, "Polyatomique")
    elements = struct.unpack_from(buf.byte_order + "15i", buf.data,
                                  start + L.POLYATOMIQUE_ELEMENTS_OFFSET)
    poly["tab_elts"] = [L.Block(num_elt=elements[3 * i], num_isotop=elements[3 * i + 1],
                                quantite=elements[3 * i + 2]) for i in range(5)]
    return poly


def _em_record(buf: _HeaderBuffer, start: int) -> tuple[float, int, int]:
    buf.need(start, 16, "electron multiplier record")
    return struct.unpack_from(buf.byte_order + "dii", buf.data, start)


def parse_header_blocks(path, head: bytes, byte_order: str) -> dict[str, Any]:
    """Decode every header block the reader knows into a dict of :class:`Block`."""
    buf = _HeaderBuffer(path, head, byte_order)
    blocks: dict[str, Any] = {}
    blocks["def_analysis"] = da = buf.block(0, L.DEF_ANALYSIS, L.DEF_ANALYSIS_SIZE,
                                            "Def_analysis")
    release = da.release
    new_layout = release >= L.NEW_RELEASE
    mask_im_size = L.MASK_IM_SIZE_NEW if new_layout else L.MASK_IM_SIZE_OLD
    blocks["mask_im"] = mask_im = buf.block(L.DEF_ANALYSIS_SIZE, L.MASK_IM, mask_im_size,
                                            "Mask_im")
    n_masses = mask_im.nb_mass
    if not 0 < n_masses <= MAX_MASSES:
        raise _fail(path, f"number of masses at offset {L.MASK_IM_NB_MASS_OFFSET} is "
                    f"{n_masses}; expected 1 to {MAX_MASSES}")
    tab_mass_start = L.DEF_ANALYSIS_SIZE + mask_im_size

    tab_mass = []
    for k in range(n_masses):
        start = tab_mass_start + L.TAB_MASS_SIZE * k
        record = buf.block(start, L.TAB_MASS, L.TAB_MASS_SIZE, f"Tab_mass[{k}]")
        record["mass"] = _polyatomique(buf, start + L.TAB_MASS_POLY_OFFSET)
        tab_mass.append(record)
    blocks["tab_mass"] = tab_mass
    cal_start = tab_mass_start + L.TAB_MASS_SIZE * n_masses
    blocks["cal_cond"] = [
        buf.block(cal_start + L.CAL_COND_SIZE * k, L.CAL_COND, L.CAL_COND_SIZE,
                  f"Cal_cond[{k}]") for k in range(n_masses)]

    # Poly_list sits at a computed offset; its tag is missing in some files and a
    # stray copy of it appears in others, so the tag is only a soft check.
    poly_start = tab_mass_start + (L.TAB_MASS_SIZE + L.CAL_COND_SIZE) * n_masses
    blocks["poly_list"] = poly_list = buf.block(poly_start, L.POLY_LIST, L.POLY_LIST_SIZE,
                                                "Poly_list")
    poly_list["tag_present"] = poly_list.structname.startswith("Poly_list")
    nb_poly = poly_list.nb_poly if 0 <= poly_list.nb_poly <= 64 else 0
    blocks["polyatomique"] = [
        _polyatomique(buf, poly_start + L.POLY_LIST_SIZE + L.POLYATOMIQUE_SIZE * k)
        for k in range(nb_poly)]

    mask_nano_start = poly_start + L.POLY_LIST_SIZE + L.POLYATOMIQUE_SIZE * nb_poly
    blocks["mask_nano"] = mask_nano = buf.block(mask_nano_start, L.MASK_NANO,
                                                L.MASK_NANO_SIZE, "Mask_nano")
    version = mask_nano.m_nVersion
    bfield_start = mask_nano_start + L.MASK_NANO_SIZE
    nb_bfield = mask_nano.m_nNbBField if 0 < mask_nano.m_nNbBField <= 72 else 1
    bfield = buf.block(bfield_start, L.TAB_BFIELD_NANO, L.BFIELD_HEAD_SIZE,
                       "Tab_BField_nano")
    n_trolleys = L.TROLLEY_COUNT.get(version, 12)
    trolley_bytes = L.trolley_size(version)
    bfield["m_TrolleyTab"] = [
        buf.block(bfield_start + L.BFIELD_HEAD_SIZE + trolley_bytes * t, L.TROLLEY,
                  trolley_bytes, f"trolley record {t}")
        for t in range(n_trolleys)]
    blocks["tab_Bfield_nano"] = [bfield]

    # Anal_param_nano: computed from the B-field record size of this Mask_nano
    # version; when the version is unknown or the tag is not there, the first
    # tag after Mask_nano (a second copy further on must be ignored).
    tag = b"Anal_param_nano"
    apn = -1
    if version in L.BFIELD_RECORD_SIZE:
        apn = bfield_start + nb_bfield * L.BFIELD_RECORD_SIZE[version]
    if not buf.tag_at(apn, tag):
        apn = head.find(tag + b"\0", bfield_start)
        if apn < 0:
            raise _fail(path, f"no Anal_param_nano block after Mask_nano (offset "
                        f"{mask_nano_start}, version {version})")
    blocks["anal_param_nano"] = ap = buf.block(apn, L.ANAL_PARAM_NANO, L.ANAL_PARAM_NANO_SIZE,
                                               "Anal_param_nano")
    ap["prim"] = buf.block(apn + L.AP_PRIMARY_OFFSET, L.AP_PRIMARY, 552, "primary beam")
    ap["seco"] = buf.block(apn + L.AP_SECONDARY_OFFSET, L.AP_SECONDARY, 192, "secondary beam")
    em_records = [_em_record(buf, apn + L.EM_RECORDS_OFFSET + L.EM_RECORD_SIZE * k)
                  for k in range(5)]
    for k, (yield_, background, dead_time) in enumerate(em_records, start=1):
        ap[f"dEM{k}Yield"], ap[f"nEM{k}Background"], ap[f"nEM{k}DeadTime"] = (
            yield_, background, dead_time)

    dab_start = apn + L.ANAL_PARAM_NANO_SIZE
    blocks["def_analysis_bis"] = dab = buf.block(dab_start, L.DEF_ANALYSIS_BIS,
                                                 L.DEF_ANALYSIS_BIS_SIZE, "Def_analysis_bis")
    if dab.magic != L.DEF_ANALYSIS_BIS_MAGIC:
        raise _fail(path, f"Def_analysis_bis at offset {dab_start} has magic {dab.magic}, "
                    f"expected {L.DEF_ANALYSIS_BIS_MAGIC}")
    signature_at = dab_start + L.WRITER_SIGNATURE_OFFSET
    dab["written_by_napari_nanosims"] = (
        head[signature_at:signature_at + len(L.WRITER_SIGNATURE)] == L.WRITER_SIGNATURE)

    bis_start = dab_start + L.DEF_ANALYSIS_BIS_SIZE + L.ANAL_PARAM_SIZE + L.SETUP_SOFT_SIZE
    if buf.tag_at(bis_start, b"Anal_param_nano_bis"):
        blocks["anal_param_nano_bis"] = bis = buf.block(
            bis_start, L.ANAL_PARAM_NANO_BIS, L.ANAL_PARAM_NANO_BIS_SIZE, "Anal_param_nano_bis")
        for k, offset in ((6, L.EM6_RECORD_OFFSET), (7, L.EM7_RECORD_OFFSET)):
            (bis[f"dEM{k}Yield"], bis[f"nEM{k}Background"],
             bis[f"nEM{k}DeadTime"]) = _em_record(buf, bis_start + offset)

    hi_start = len(head) - L.HEADER_IMAGE_SIZE
    blocks["header_image"] = hi = buf.block(hi_start, L.HEADER_IMAGE, L.HEADER_IMAGE_SIZE,
                                            "Header_image")
    if hi.size_self != L.HEADER_IMAGE_SIZE:
        raise _fail(path, f"Header_image at offset {hi_start} (header size - 84) starts "
                    f"with {hi.size_self}, expected 84")
    blocks["_offsets"] = {
        "tab_mass": tab_mass_start, "poly_list": poly_start, "mask_nano": mask_nano_start,
        "tab_bfield_nano": bfield_start, "anal_param_nano": apn,
        "def_analysis_bis": dab_start,
        "anal_param_nano_bis": bis_start if "anal_param_nano_bis" in blocks else None,
        "header_image": hi_start}
    return blocks


def mass_slots(tab_mass, trolleys, old_layout: bool
               ) -> tuple[int | None, tuple[int, ...], tuple[str | None, ...]]:
    """Find the detector slot and detector of every mass, and the secondary-electron channel.

    The slot of mass ``k`` is the index ``t`` of the trolley record whose "valid" flag is
    set and whose acquisition index is ``k`` (this also works in files whose Tab_mass
    index field is 0); when no trolley says so, the Tab_mass index field. Slots 1-5 are
    EM1-EM5, 8 the SE detector ("Esi"), 10 and 11 EM6 and EM7 (``../shared/docs``
    analysis section 1.3). Old files (release < 4108) only populate slots 1-5 and 8; a
    higher slot there is junk and maps to no detector.

    Returns
    -------
    se_index : int or None
        Index of the SE mass (slot 8, or mass 0 amu without a label), None without SE.
    slots : tuple of int
        The slot of each mass (0 when unknown).
    detectors : tuple of str or None
        ``'EM1'``..``'EM7'``, ``'SE'``, ``'FC'`` (Tab_mass type 1) or None when unknown.
    """
    slots = []
    for k, record in enumerate(tab_mass):
        slot = record._not_in_spec
        for t, trolley in enumerate(trolleys):
            if trolley.m_nFlagTrolleyValided == 1 and trolley.m_nNum == k:
                slot = t
                break
        slots.append(int(slot) if 0 <= slot <= 12 else 0)
    se_index = None
    for k, record in enumerate(tab_mass):
        if slots[k] == SE_TROLLEY_SLOT or (record.mass_amu == 0.0 and not record.mass.string):
            se_index = k
            break
    detectors = tuple(
        "SE" if k == se_index else detector_name(slot, record.detecteur, old_layout)
        for k, (slot, record) in enumerate(zip(slots, tab_mass)))
    return se_index, tuple(slots), detectors


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
